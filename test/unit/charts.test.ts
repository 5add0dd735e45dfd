// The benchmark charts: valid SVG, every value placed where it belongs, text escaped.
import t from 'tap';
import { barChart, chartFiles, chartMarkdown, escapeXml } from '../../benchmarks/charts.js';

/** Whether the tags of an SVG document nest properly (no XML parser in Node: a strict scan). */
function wellFormed(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) { if (stack.pop() !== name) return false; } else stack.push(name);
  }
  // Nothing but tags and text: no stray '<' or '&' outside an entity.
  const text = svg.replace(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g, '');
  return stack.length === 0 && !/[<>]/.test(text) && !/&(?!(lt|gt|amp|quot|#39);)/.test(text);
}

/** The bars of a chart: label, value, bar width. */
function bars(svg: string): { label: string; value: number; width: number | undefined; text: string }[] {
  return [...svg.matchAll(/<g class="bar" data-label="([^"]*)" data-value="([^"]*)">([\s\S]*?)<\/g>/g)].map(([, label, value, body]) => ({
    label, value: Number(value),
    width: /<rect [^>]*width="([\d.]+)"/.exec(body) ? Number(/<rect [^>]*width="([\d.]+)"/.exec(body)![1]) : undefined,
    text: [...body.matchAll(/>([^<]*)<\/text>/g)].map((x) => x[1]).at(-1) ?? '',
  }));
}

t.test('a linear bar chart: well-formed, bars proportional to their values, text escaped', async (t) => {
  const svg = barChart({
    title: 'A <title> & "quotes"',
    bars: [{ label: 'bare', value: 1 }, { label: 'L1 <hit>', value: 0.5, strong: true }, { label: 'none', value: NaN }],
    reference: { value: 1, label: 'bare' },
  });
  t.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), 'an SVG document');
  t.ok(wellFormed(svg), 'well-formed');
  t.match(svg, /A &lt;title&gt; &amp; &quot;quotes&quot;/, 'the title escaped');
  const b = bars(svg);
  t.same(b.map((x) => x.label), ['bare', 'L1 &lt;hit&gt;', 'none']);
  t.ok(Math.abs(b[1].width! / b[0].width! - 0.5) < 0.01, `widths in proportion (${b[1].width} / ${b[0].width})`);
  t.equal(b[2].width, undefined, 'no bar for a value not measured');
  t.equal(b[2].text, '–', 'shown as a dash');
  t.equal(b[1].text, '0.50', 'the value printed');
});

t.test('a log-scale chart places each decade at the same distance', async (t) => {
  const svg = barChart({ title: 'log', bars: [{ label: 'a', value: 0.01 }, { label: 'b', value: 0.1 }, { label: 'c', value: 1 }],
    log: true });
  t.ok(wellFormed(svg));
  const [a, b, c] = bars(svg);
  t.ok(Math.abs((c.width! - b.width!) - (b.width! - a.width!)) < 0.5, 'equal steps per decade');
});

t.test('chartFiles draws what the run measured, from its own numbers', async (t) => {
  const files = chartFiles({
    http: [{ framework: 'Fastify', servers: [{ label: 'bare Fastify', rps: 60737, ratio: 1 },
      { label: 'tiered, L1 hit', rps: 56905, ratio: 0.93, strong: true }] }],
    revocation: { samples: 2000, quantiles: [{ label: 'p50', ms: 0.083 }, { label: 'p99', ms: 0.434 }, { label: 'max', ms: 3.169 }] },
    memory: { rows: [{ label: 'Redis, 1,000,000 sessions, 1 per user', bytes: 552.6 }], target: { bytes: 400, label: '400 B' } },
  });
  t.same([...files.keys()], ['l1-hit-fastify.svg', 'revocation-latency.svg', 'bytes-per-session.svg']);
  for (const svg of files.values()) t.ok(wellFormed(svg), 'well-formed');
  const http = bars(files.get('l1-hit-fastify.svg')!);
  t.equal(http[1].value, 0.93);
  t.match(http[1].text, /0\.93 {2}\(56,905 req\/s\)/, 'ratio and req/s');
  t.same(bars(files.get('revocation-latency.svg')!).map((x) => x.text), ['0.083 ms', '0.434 ms', '3.169 ms']);
  t.match(files.get('bytes-per-session.svg')!, /552\.6 B/);
  t.same([...chartFiles({}).keys()], [], 'a run that measured none of it draws nothing');
  t.equal(chartMarkdown(['l1-hit-fastify.svg']), '![l1 hit fastify](charts/l1-hit-fastify.svg)');
  t.equal(escapeXml(`<&>"'`), '&lt;&amp;&gt;&quot;&#39;');
});
