// Copies xterm.js (the terminal of the serial console), its fit addon, stylesheet and licences to
// static/vendor/xterm/. xterm.js creates <style> elements for its measures and colours: under the
// portal's CSP (no 'unsafe-inline') static/js/console.js gives each the page's nonce. The scripts'
// source-map comments are dropped: the maps are not shipped, and collectstatic's manifest storage
// refuses a file that points at one it cannot find.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "..", "..", "static", "vendor", "xterm");
const modules = join(here, "node_modules", "@xterm");
const versions = [];

mkdirSync(out, { recursive: true });
for (const [name, files] of [
  ["xterm", [["lib/xterm.js", "xterm.js"], ["css/xterm.css", "xterm.css"], ["LICENSE", "LICENSE"]]],
  ["addon-fit", [["lib/addon-fit.js", "addon-fit.js"], ["LICENSE", "LICENSE.addon-fit"]]],
]) {
  const pkg = join(modules, name);
  versions.push(`@xterm/${name} ${JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version}`);
  for (const [from, to] of files) {
    if (to.endsWith(".js")) {
      const text = readFileSync(join(pkg, from), "utf8").replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
      writeFileSync(join(out, to), text);
    } else {
      copyFileSync(join(pkg, from), join(out, to));
    }
  }
}
console.log(`wrote ${out} (${versions.join(", ")})`);
