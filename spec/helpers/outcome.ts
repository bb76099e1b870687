/** Run a command and return its error code, or 'ok' if it succeeded. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    return String((err as { code?: unknown }).code)
  }
}
