// A small Dockerfile reader for the tests: instructions (continuations joined, comments dropped), stages, exec-form
// arguments, COPY sources, and the .dockerignore rules as Docker applies them (last match wins; a pattern that
// matches a parent directory matches everything under it).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './ops.ts';

export interface Instruction { keyword: string; args: string; line: number }
export interface Stage { from: string; name?: string; instructions: Instruction[] }

export function readDockerfile(path = join(ROOT, 'Dockerfile')): Instruction[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: Instruction[] = [];
  let buffer = '';
  let start = 0;
  lines.forEach((raw, i) => {
    const line = raw.trimEnd();
    if (buffer === '' && /^\s*(#|$)/.test(line)) return;
    if (buffer !== '' && /^\s*#/.test(line)) return; // comment lines inside a continuation
    if (buffer === '') start = i + 1;
    if (line.endsWith('\\')) {
      buffer += `${line.slice(0, -1)} `;
      return;
    }
    buffer += line;
    const match = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buffer);
    if (!match) throw new Error(`Dockerfile line ${start}: cannot parse "${buffer}"`);
    out.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start });
    buffer = '';
  });
  if (buffer) throw new Error('Dockerfile ends inside a line continuation');
  return out;
}

export function stages(instructions: Instruction[]): Stage[] {
  const result: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!match) throw new Error(`FROM on line ${ins.line}: cannot parse`);
      result.push({ from: match[1]!, name: match[2], instructions: [] });
    } else if (result.length > 0) {
      result.at(-1)!.instructions.push(ins);
    }
  }
  return result;
}

/** The JSON array of an exec-form instruction (CMD, ENTRYPOINT, HEALTHCHECK CMD); undefined for shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || parsed.some((a) => typeof a !== 'string')) throw new Error(`not a JSON string array: ${args}`);
  return parsed as string[];
}

/** The variables of one ENV instruction (NAME=value or NAME="value" pairs). */
export function envPairs(args: string): Array<[string, string]> {
  return [...args.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map((m) => [m[1]!, m[2]!.startsWith('"') ? JSON.parse(m[2]!) as string : m[2]!]);
}

/** Every variable a stage's ENV instructions set. */
export function stageEnv(stage: Stage): Record<string, string> {
  return Object.fromEntries(stage.instructions.filter((i) => i.keyword === 'ENV').flatMap((i) => envPairs(i.args)));
}

export interface Copy { from?: string; sources: string[]; dest: string; line: number }

export function copyOf(ins: Instruction): Copy {
  const words = ins.args.startsWith('[') ? execForm(ins.args)! : ins.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const rest = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1)!, line: ins.line };
}

/** LABEL key="value" … as a map (values unquoted). */
export function labels(instructions: Instruction[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const ins of instructions.filter((i) => i.keyword === 'LABEL')) {
    for (const match of ins.args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
      out.set(match[1]!, match[2]!.startsWith('"') ? JSON.parse(match[2]!) as string : match[2]!);
    }
  }
  return out;
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Docker's .dockerignore: is this context-relative path left out of the build context? */
export function dockerignored(path: string, ignoreFile = join(ROOT, '.dockerignore')): boolean {
  const rules = readFileSync(ignoreFile, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negate, re: globToRegExp(pattern) };
    });
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const rule of rules) {
    if (candidates.some((c) => rule.re.test(c))) excluded = !rule.negate;
  }
  return excluded;
}
