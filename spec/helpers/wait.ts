/** Bounded waits for specs: never a hang, never a timing assert. */
import { setTimeout as sleep } from 'node:timers/promises'

/** True when `p` settles within `ms`. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  try {
    return await Promise.race([p.then(() => true, () => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Poll `pred` every 10 ms for up to `ms`; returns its last value. */
export async function poll(pred: () => boolean, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms
  while (!pred()) {
    if (Date.now() > until) return false
    await sleep(10)
  }
  return true
}
