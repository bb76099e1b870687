/** Wire protocol v1 constants. PROTOCOL.md is the normative description. */

export const PROTOCOL_VERSION = 1

/** First two bytes of every frame: lets a reader spot a frame boundary. */
export const MAGIC = 0xc550

/** Fixed part of every frame, before the payload digest. */
export const HEADER_SIZE = 24

/** Largest payload a frame may carry; a header announcing more is invalid. */
export const MAX_PAYLOAD = 16 * 1024 * 1024

/** Frame types (byte 3 of the header). */
export const FrameType = {
  HELLO: 1,
  START: 2,
  DATA: 3,
  END: 4,
  RESULT: 5,
  ERROR: 6,
  RESYNC: 7,
  PROGRESS: 8,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

/** Payload checksum algorithms (byte 16 of the header) and their digest sizes. */
export const ChecksumId = { none: 0, crc32: 1, md5: 2 } as const
export type ChecksumName = keyof typeof ChecksumId
export const DIGEST_SIZE: Record<number, number> = { 0: 0, 1: 4, 2: 16 }

/** Request ids are u32; 0 is reserved for connection-level frames. */
export const MAX_ID = 0xffffffff

/** Default and bounds of the page size (payload bytes per DATA frame). */
export const DEFAULT_PAGE_SIZE = 256 * 1024
export const MIN_PAGE_SIZE = 1024
export const MAX_PAGE_SIZE = MAX_PAYLOAD

/** Largest payload of a frame a client sends (an upload's page); bounds a server's memory per connection. */
export const MAX_UPLOAD_PAYLOAD = 4 * 1024 * 1024

/** Longest request line the server accepts, newline excluded. */
export const DEFAULT_MAX_REQUEST = 64 * 1024

/** Requests one connection may run at once by default (the server's --max-in-flight); more wait unread. */
export const DEFAULT_MAX_IN_FLIGHT = 32

/** Uploads (`write`) one connection may run at once; a client queues more itself rather than get EBUSY. */
export const MAX_UPLOADS_PER_CONNECTION = 8

/** Paths one `locate` may name (its answer is one RESULT). */
export const MAX_LOCATE_PATHS = 4096
/** Paths one readv may ask for (a request line holds fewer of any real length). */
export const MAX_READV_PATHS = 100_000
