// Runs a `cnx` command in-process and captures what it prints, for tests of the commands' output and errors.
import { main } from '../../native-worker/cli.ts';

export async function capture(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const [out, err] = [[] as string[], [] as string[]];
  const [log, error] = [console.log, console.error];
  console.log = (m: string) => out.push(m);
  console.error = (m: string) => err.push(m);
  try {
    return { code: await main(args), out: out.join('\n'), err: err.join('\n') };
  } finally {
    [console.log, console.error] = [log, error];
  }
}
