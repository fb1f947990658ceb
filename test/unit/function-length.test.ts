// No function outside the renderer and the tests is longer than 100 lines (the house style asks for well
// under 60): long functions on the paths everyone reads are split into named steps. Measured with the
// TypeScript compiler's own parser, from a function's first line to its last, nested functions included.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const REPO = join(import.meta.dirname, '..', '..');
const ROOTS = ['bin', 'common', 'main', 'native-worker'];
const LIMIT = 100;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (f === 'node_modules' || f === 'build') return [];
    return statSync(p).isDirectory() ? sources(p) : /\.(ts|mts)$/.test(f) && !f.endsWith('.d.ts') ? [p] : [];
  });
}

/** Functions of a file longer than `limit` lines: 'file:line name (N lines)'. */
function longFunctions(file: string, limit = LIMIT): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const lines = sf.getLineAndCharacterOfPosition(node.getEnd()).line - first + 1;
      const name = node.name && ts.isIdentifier(node.name) ? node.name.text : '(anonymous)';
      if (lines > limit) out.push(`${relative(REPO, file)}:${first + 1} ${name} (${lines} lines)`);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

test(`no function outside renderer/ and test/ is longer than ${LIMIT} lines`, () => {
  const long = ROOTS.flatMap((r) => sources(join(REPO, r))).flatMap((f) => longFunctions(f));
  assert.deepEqual(long, []);
});

test('the check finds a long function', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cnx-length-'));
  try {
    const file = join(dir, 'long.ts');
    writeFileSync(file, `export function long(): number {\n${'  let x = 1;\n'.repeat(99)}  return 1;\n}\nconst short = () => 1;\n`);
    assert.deepEqual(longFunctions(file).map((l) => l.replace(/^.*:/, '')), ['1 long (102 lines)']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
