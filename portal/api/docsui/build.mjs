// Copies Swagger UI's browser bundle, its stylesheet and its licence to static/vendor/swagger-ui/
// for the API docs page (/api/v1/docs). Only BaseLayout is used, so the standalone preset (the
// top bar with a URL box) is left out; static/js/api-docs.js starts it, with no inline script.
// Source-map comments are dropped (the maps are not copied): collectstatic's manifest storage
// would otherwise fail on the missing swagger-ui.css.map.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "..", "static", "vendor", "swagger-ui");
const pkg = join(here, "node_modules", "swagger-ui-dist");
const { version } = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
const SOURCE_MAP = /\n?(\/\*# sourceMappingURL=[^*]*\*\/|\/\/# sourceMappingURL=\S*)\s*$/;

mkdirSync(out, { recursive: true });
for (const name of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
  const text = readFileSync(join(pkg, name), "utf8");
  writeFileSync(join(out, name), text.replace(SOURCE_MAP, "\n"));
}
for (const name of ["swagger-ui-bundle.js.LICENSE.txt", "LICENSE", "NOTICE"]) {
  copyFileSync(join(pkg, name), join(out, name));
}
console.log(`wrote ${out} (swagger-ui-dist ${version})`);
