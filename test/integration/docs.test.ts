// The documentation holds: the API reference builds from the TSDoc with every export documented
// (TypeDoc's validation, warnings are errors), no link in the README or docs/ is broken (files
// and #anchors), and every README or guide snippet marked `<!-- file: path -->` is that file,
// character for character (the file is compiled by `npm run typecheck` and run by the suite).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function markdownFiles(): string[] {
  const docs = path.join(root, 'docs');
  const inDocs = existsSync(docs)
    ? readdirSync(docs, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md') && !f.startsWith('api')).map((f) =>
      path.join('docs', f))
    : [];
  return ['README.md', 'benchmarks/README.md', ...inDocs];
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^(```|~~~)/.test(line)) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1].toLowerCase().replace(/<[^>]+>/g, '').replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of markdown.matchAll(/<a (?:name|id)="([^"]+)"/g)) out.add(m[1]);
  return out;
}

t.test('every export is documented: TypeDoc builds the API reference with no warning', async (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'tiered-session-api-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules/typedoc/bin/typedoc'), '--out', out],
    { cwd: root, encoding: 'utf8', timeout: 180_000 });
  const text = `${r.stdout}\n${r.stderr}`.replace(/\p{Cc}\[[0-9;]*m/gu, '');
  t.equal(r.status, 0, `typedoc exits 0${r.status === 0 ? '' : `\n${text}`}`);
  t.notMatch(text, /\[warning\]/, 'no warning (an undocumented export, a type used but not exported, a broken {@link})');
  t.ok(existsSync(path.join(out, 'index.html')), 'the reference is written');
});

t.test('no link in the README or docs/ is broken (files and #anchors)', async (t) => {
  const files = markdownFiles();
  t.ok(files.length >= 2, `${files.length} markdown files`);
  let links = 0;
  for (const file of files) {
    const text = readFileSync(path.join(root, file), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const href = m[1];
      if (/^(https?:|mailto:)/.test(href)) continue;
      links++;
      const [target, anchor] = href.split('#');
      const resolved = target === '' ? path.join(root, file) : path.resolve(path.dirname(path.join(root, file)),
        decodeURIComponent(target));
      t.ok(existsSync(resolved), `${file}: ${href} points at a file that exists`);
      if (anchor !== undefined && anchor !== '' && resolved.endsWith('.md') && existsSync(resolved)) {
        t.ok(anchorsOf(readFileSync(resolved, 'utf8')).has(anchor), `${file}: ${href}: the heading exists`);
      }
    }
  }
  t.ok(links > 0, `${links} relative links checked`);
});

t.test('a snippet marked <!-- file: path --> is that file, character for character', async (t) => {
  let snippets = 0;
  for (const file of markdownFiles()) {
    const text = readFileSync(path.join(root, file), 'utf8');
    for (const m of text.matchAll(/<!-- file: (\S+) -->\n```\w*\n([\s\S]*?)```/g)) {
      snippets++;
      const source = path.join(root, m[1]);
      t.ok(existsSync(source), `${file}: ${m[1]} exists`);
      if (existsSync(source)) t.equal(m[2], readFileSync(source, 'utf8'), `${file}: the snippet is ${m[1]} as it is`);
    }
  }
  t.ok(snippets >= 1, `${snippets} marked snippets`);
});
