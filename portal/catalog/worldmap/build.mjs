// Projects world-atlas's 1:110m land polygons to an equirectangular SVG.
// portal/residency/picker.py places region pins with the same projection (PROJECTION below).
import { readFileSync, writeFileSync, mkdirSync, copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { feature } from "topojson-client";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "..", "static", "vendor", "world-map");
// Cropped to where clouds are (the Americas to New Zealand, Arctic coast to Cape Horn) so that
// European regions a few degrees apart stay apart. Keep in step with portal/residency/picker.py.
const PROJECTION = { width: 1000, west: -128, east: 180, north: 72, south: -47 };
const scale = PROJECTION.width / (PROJECTION.east - PROJECTION.west);
const height = (PROJECTION.north - PROJECTION.south) * scale;

const topology = JSON.parse(readFileSync(join(here, "node_modules/world-atlas/land-110m.json"), "utf8"));
const land = feature(topology, topology.objects.land);

const point = ([lon, lat]) => [((lon - PROJECTION.west) * scale).toFixed(1), ((PROJECTION.north - lat) * scale).toFixed(1)];
// A ring that crosses the antimeridian (Eurasia at Chukotka, Fiji) is unwrapped so it stays
// continuous, then drawn twice, 360° apart: the view box clips each copy to its own side.
const unwrap = (coords) => {
  let offset = 0;
  return coords.map(([lon, lat], i) => {
    if (i > 0) {
      const jump = lon - coords[i - 1][0];
      if (jump > 180) offset -= 360;
      else if (jump < -180) offset += 360;
    }
    return [lon + offset, lat];
  });
};
const path = (coords) => "M" + coords.map((c) => point(c).join(",")).join("L") + "Z";
const ring = (coords) => {
  const flat = unwrap(coords);
  const lons = flat.map(([lon]) => lon);
  if (Math.max(...lons) <= 180 && Math.min(...lons) >= -180) return path(flat);
  const shift = Math.max(...lons) > 180 ? -360 : 360;
  return path(flat) + path(flat.map(([lon, lat]) => [lon + shift, lat]));
};
const polygons = land.features
  .flatMap((f) => (f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates))
  .filter((polygon) => polygon[0].some(([, lat]) => lat > PROJECTION.south)); // Antarctica is off the map
const d = polygons.map((polygon) => polygon.map(ring).join("")).join("");

const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${PROJECTION.width} ${height.toFixed(1)}" role="img" aria-label="World map">
<!-- Land: Natural Earth 1:110m (public domain) via world-atlas (ISC). Built by portal/catalog/worldmap/build.mjs -->
<path fill="#dfe4ee" stroke="#c9d0de" stroke-width="0.6" d="${d}"/>
</svg>
`;
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "world.svg"), svg);
copyFileSync(join(here, "node_modules/world-atlas/LICENSE"), join(out, "LICENSE.world-atlas"));
console.log(`wrote ${join(out, "world.svg")} (${svg.length} bytes, ${polygons.length} polygons, height ${height.toFixed(1)})`);
