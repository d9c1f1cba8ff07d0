// Copies uPlot's browser build, its stylesheet and its licence to static/vendor/uplot/.
// uPlot draws on <canvas> and sizes its elements through element.style from script (CSSOM), which
// `style-src 'self'` allows; it writes no style attributes into markup and adds no <style> element.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "..", "static", "vendor", "uplot");
const pkg = join(here, "node_modules", "uplot");
const { version } = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));

mkdirSync(out, { recursive: true });
for (const [from, to] of [
  ["dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["dist/uPlot.min.css", "uPlot.min.css"],
  ["LICENSE", "LICENSE"],
]) {
  copyFileSync(join(pkg, from), join(out, to));
}
console.log(`wrote ${out} (uPlot ${version})`);
