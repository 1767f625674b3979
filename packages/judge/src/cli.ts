// Usage: node --import tsx packages/judge/src/cli.ts <folder with images + captions.json> [--domain path] [--json]
// Prints per-attribute accuracy of the images against their captions.
import { loadDomain, DEFAULT_DOMAIN_PATH } from './domain.ts';
import { judgeFolder } from './folder.ts';

const args = process.argv.slice(2);
const folder = args.find((a) => !a.startsWith('--'));
if (!folder) {
  console.error('usage: cli.ts <folder with images + captions.json> [--domain domain.json] [--json] [--failures]');
  process.exit(2);
}
const di = args.indexOf('--domain');
const d = loadDomain(di >= 0 && args[di + 1] ? args[di + 1] : DEFAULT_DOMAIN_PATH);
const { verdicts, tally } = judgeFolder(folder, d);
if (args.includes('--json')) {
  console.log(JSON.stringify(tally, null, 2));
} else {
  console.log(`images ${tally.images}, parsed captions ${tally.parsed}`);
  for (const [k, v] of Object.entries(tally.perAttribute))
    console.log(`${k.padEnd(11)} ${(100 * v.accuracy).toFixed(1).padStart(5)} %  (${v.pass}/${v.total})`);
  console.log(`${'overall'.padEnd(11)} ${(100 * tally.overall.accuracy).toFixed(1).padStart(5)} %  (${tally.overall.pass}/${tally.overall.total})`);
  console.log(`all attributes right on ${(100 * tally.allAttributesCorrect).toFixed(1)} % of images`);
}
if (args.includes('--failures')) {
  for (const v of verdicts) {
    const bad = Object.entries(v.attributes).filter(([, ok]) => !ok).map(([k]) => k);
    if (bad.length || !v.parsed)
      console.log(`${bad.join(',') || 'unparsed'}\t${v.caption}\t` +
        v.analysis.background + ' | ' + v.analysis.components.map((c) => `${c.size} ${c.color} ${c.shape} @${c.position}`).join('; '));
  }
}
