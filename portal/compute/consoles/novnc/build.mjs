// Copies noVNC (the graphical console's VNC client) to static/vendor/novnc/: its ES modules
// (core/, which imports vendor/pako/ by relative path) and its licences. Nothing is bundled: the
// browser loads core/rfb.js as a module from static/js/graphical-console.js, and noVNC styles
// its canvas through the CSSOM only, which the portal's CSP (no 'unsafe-inline') allows.
import { cpSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "..", "..", "static", "vendor", "novnc");
const pkg = join(here, "node_modules", "@novnc", "novnc");
const version = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
cpSync(join(pkg, "core"), join(out, "core"), { recursive: true });
cpSync(join(pkg, "vendor", "pako"), join(out, "vendor", "pako"), {
  recursive: true,
  filter: (path) => !path.endsWith("README.md"),
});
cpSync(join(pkg, "LICENSE.txt"), join(out, "LICENSE.txt"));
for (const licence of ["LICENSE.BSD-2-Clause", "LICENSE.MPL-2.0"]) {
  cpSync(join(pkg, "docs", licence), join(out, licence));
}
console.log(`wrote ${out} (@novnc/novnc ${version})`);
