/** `attune serve`: placeholder until the server lands; see issue "Server". */
export async function run(): Promise<number> {
  process.stderr.write('attune serve: the HTTP server is not built yet\n');
  return 1;
}
