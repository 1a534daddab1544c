/** Polls until `check` holds. The bound only stops a broken test from hanging; no test asserts on time. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, boundMs = 20_000): Promise<void> {
  const give = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > give) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
