// The layering of src/ (issue 11 §4): every layer owns its options type, src/config.ts maps the configuration
// file onto them, so nothing below the top imports src/config.ts; and no module imports itself back through
// others (type-only imports count: a type cycle still makes a reader go back and forth).

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
/** The top of the stack: they read the configuration file or wire the parts from the whole Config. */
const TOP = new Set(['cli.ts', 'dev.ts', 'server.ts', 'app.ts', 'services.ts', 'config.ts']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative imports of a module (static `import … from`, `export … from`, dynamic `import('…')`), as src/ paths. */
export function importsOf(file: string, text: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s+['"](\.{1,2}\/[^'"]+)['"]/gm,
    /^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gm,
    /\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g,
    /\btypeof import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of text.matchAll(pattern)) found.add(relative(SRC, resolve(dirname(file), match[1]!)));
  }
  return [...found];
}

function graph(): Map<string, string[]> {
  return new Map(sources(SRC).map((file) => [relative(SRC, file), importsOf(file, readFileSync(file, 'utf8'))]));
}

/** Every cycle's smallest witness, found by a depth-first walk (each cycle reported once, from its first module). */
export function cycles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const walk = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) walk(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...edges.keys()].sort()) if (!state.has(node)) walk(node);
  return found;
}

test('the walker sees every import form and finds a cycle, a type-only one included', () => {
  const file = join(SRC, 'a', 'x.ts');
  const text = [
    "import type { A } from '../config.ts';",
    "import {\n  b,\n  c,\n} from './y.ts';",
    "export { d } from '../z.ts';",
    "import './side.ts';",
    "const m = await import('../dev.ts');",
    "let t: typeof import('./w.ts');",
    "// import { no } from './comment-is-not-at-line-start.ts' is still text, not an import",
  ].join('\n');
  assert.deepEqual(importsOf(file, text).sort(), ['a/side.ts', 'a/w.ts', 'a/y.ts', 'config.ts', 'dev.ts', 'z.ts']);
  const edges = new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']], ['d.ts', ['a.ts']]]);
  assert.deepEqual(cycles(edges), [['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  assert.deepEqual(cycles(new Map([['a.ts', ['b.ts']], ['b.ts', []]])), []);
});

test('src/ has no import cycle', () => {
  const edges = graph();
  assert.ok(edges.size > 50, `only ${edges.size} modules found under ${SRC}`);
  assert.deepEqual(cycles(edges).map((c) => c.join(' → ')), []);
});

test('no module below the top imports src/config.ts: each layer owns its options type', () => {
  const offenders = [...graph()].filter(([module, imports]) => !TOP.has(module) && imports.includes('config.ts')).map(([module]) => module);
  assert.deepEqual(offenders, []);
});

test("the README's layout (Development) names every directory of src/", () => {
  const readme = readFileSync(join(SRC, '..', 'README.md'), 'utf8');
  const layout = /^## Development\n\n```\n([\s\S]*?)\n```/m.exec(readme)?.[1];
  assert.ok(layout, 'the Development section opens with the source tree');
  const dirs = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  assert.ok(dirs.length > 5);
  assert.deepEqual(dirs.filter((d) => !new RegExp(`^\\s+${d}/`, 'm').test(layout) && !layout.includes(` ${d}/ `)), []);
});
