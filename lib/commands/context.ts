import type { BlockCache } from '../cache/block-cache.js'
import type { Releasable } from '../cache/block-lease.js'
import type { Jail } from '../fs/jail.js'
import type { Lister } from '../fs/meta-cache.js'
import type { KnownFiles } from '../fs/known-files.js'
import type { ListingSizes } from '../server/listing-sizes.js'
import type { LeaseGrants } from '../server/lease-grants.js'
import type { Pins } from '../server/pins.js'
import type { Settle } from '../fs/settle.js'
import type { CacheservError } from '../errors.js'
import type { ChecksumName } from '../protocol/constants.js'
import type { ReceivedFrame } from '../protocol/frame.js'
import type { Part } from '../stages/items.js'

/** What every command may use. Shared by all connections of a server. */
export interface CommandContext {
  jail: Jail
  cache: BlockCache
  /** Recently opened files and their identities: reads of unchanged ones skip the open. */
  files: KnownFiles
  /** Files pinned in the cache. */
  pins: Pins
  /** Directory listings: held in RAM (the metadata cache), or read each time. */
  meta?: Lister
  /** Bytes shown by tree listings, to warn once of a dataset larger than the cache. */
  listings?: ListingSizes
  /** When a file's version may be trusted: reads of one still being written wait (see settle.ts). */
  settle: Settle
  /** The payload checksum of the server's frames (HELLO): uploads must carry it too. */
  checksum: ChecksumName
  /** `write` is allowed. */
  writable: boolean
  /** The server's counters, for `stats`. */
  stats(): Record<string, unknown>
  /** File bytes a same-host client was given in shared memory (`locate`): the server counts them (locatedBytes). */
  located?(bytes: number): void
}

/** Where a resend (after a NACK) picks up. */
export interface Resume {
  /** First frame to send again; 0 means from the very start. */
  seq: number
  /** DATA bytes the receiver already holds. */
  offset: number
  /** Version of the file the first attempt served (from its START part), if it got that far. */
  identity?: string
}

/** Per-request inputs besides the arguments. */
export interface CommandIO {
  /** Set when this run is a resend after a NACK. */
  resume?: Resume
  /** Frames the client uploads for this request (commands with `input`). */
  input?: AsyncIterable<ReceivedFrame>
  /**
   * Stop at the next chance, failing with the signal's reason. Returning the
   * generator does that only at its next part; a long walk may yield none.
   */
  signal?: AbortSignal
  /** True while the client is not taking the output already sent to it (its reads may wait for memory behind others'). */
  backedUp?: () => boolean
  /** The request's page size now (it shrinks after NACKs): a read cuts its parts on whole pages. */
  pageSize?: () => number
  /** Every lease the command takes is shown here first: the connection then answers for it, whatever becomes of the command. */
  hold?: (lease: Releasable) => void
  /** The connection's short-circuit grants: present for a same-host client of a server whose cache is in shared memory. */
  grants?: LeaseGrants
  /**
   * Kept with the request across its attempts: what a command whose response
   * is made of several versions (readv) needs to send the same bytes again.
   */
  memo?: Record<string, unknown>
}

/**
 * A command turns its arguments into the parts of its response. It is pulled:
 * the next part is produced only when the connection can send it, and
 * returning the generator early (cancel, hang-up) runs its cleanup. With
 * `io.resume` it sends only what a receiver that NACKed still needs.
 */
export type Command = (args: Record<string, unknown>, ctx: CommandContext, io: CommandIO) => AsyncGenerator<Part, void, void>

export interface CommandSpec {
  run: Command
  /** The client sends frames for this request (an upload). */
  input?: boolean
  /**
   * The command may run silent for long before its one RESULT (a huge
   * directory, a slow disk): the connection then sends empty PROGRESS frames
   * meanwhile, so the client does not take the silence for a lost answer.
   */
  heartbeat?: boolean
}

/** Where a NACK says a receiver stands (see PROTOCOL.md, "NACK"). */
export interface NackPoint {
  /** Frames before this one arrived intact. */
  seq: number
  /** DATA bytes the receiver holds. */
  offset: number
  /** The receiver discards this request's frames until a RESYNC with this number. */
  resync: number
}

/** What a control command may do to the requests of its own connection. */
export interface ConnectionControl {
  /** A token offered by request `id`: the right one opens the connection, any other ends it (EAUTH). */
  authenticate(id: number, token: unknown): void
  /** Stop request `id` (ECANCELED), if it is still open. */
  cancel(id: number): void
  /** Send request `id`'s response again from where the receiver stands. */
  nack(id: number, at: NackPoint): void
  /** Answer request `id` with an error without touching a request open under that id. */
  refuse(id: number, err: CacheservError): void
}

/**
 * A command about the connection itself (auth, cancel, nack): it acts on the
 * connection's other requests at once, runs no job and has no response
 * stream of its own.
 */
export interface ControlSpec {
  control: (id: number, args: Record<string, unknown>, connection: ConnectionControl) => void
}

/** An entry of the command table. */
export type TableEntry = CommandSpec | ControlSpec

export function isControl(entry: TableEntry): entry is ControlSpec {
  return 'control' in entry
}
