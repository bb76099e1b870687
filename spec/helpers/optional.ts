import { createRequire } from 'node:module'

/** @node-rs/crc32 is an optional dependency with binaries for the common platforms only. */
export const FAST_CRC32_INSTALLED = ((): boolean => {
  try {
    createRequire(import.meta.url).resolve('@node-rs/crc32')
    return true
  } catch {
    return false
  }
})()
