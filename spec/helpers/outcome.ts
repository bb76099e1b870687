/** Run a command and return its error code, or 'ok' if it succeeded. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    return String((err as { code?: unknown }).code)
  }
}

/** Read a stream to its end, keeping what it emitted even when it fails. */
export async function drain(stream: AsyncIterable<unknown>): Promise<{ bytes: Buffer; error: (Error & { code?: string }) | null }> {
  const chunks: Buffer[] = []
  try {
    for await (const c of stream) chunks.push(c as Buffer)
    return { bytes: Buffer.concat(chunks), error: null }
  } catch (err) {
    return { bytes: Buffer.concat(chunks), error: err as Error }
  }
}
