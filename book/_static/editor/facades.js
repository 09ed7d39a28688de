// The label map of a facade layout (chapter "Data"), ported from p2p.facades.label_map: the same
// arithmetic in the same order on the same doubles, with Python's round (half to even) and slicing,
// so that both draw the same class in every pixel. `facade` has the fields of p2p.facades.Facade.

// Python's round(): to the nearest integer, halves to the even one.
function roundHalfEven(value) {
  const floor = Math.floor(value);
  const rest = value - floor;
  if (rest !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

// The range that Python's slice [start:stop] takes of `length` items: negative indices count from the end.
function pythonSlice(start, stop, length) {
  const index = i => Math.min(Math.max(i < 0 ? i + length : i, 0), length);
  return [index(start), index(stop)];
}

// A (size * size) array of class indices, row after row; `classes` are the class names in label order.
export function labelMap(facade, size, classes) {
  const labels = new Uint8Array(size * size);

  function box(name, y0, y1, x0, x1) {
    const [top, bottom] = pythonSlice(Math.max(roundHalfEven(y0 * size), 0), Math.min(roundHalfEven(y1 * size), size), size);
    const [left, right] = pythonSlice(Math.max(roundHalfEven(x0 * size), 0), Math.min(roundHalfEven(x1 * size), size), size);
    const label = classes.indexOf(name);
    for (let row = top; row < bottom; row++) labels.fill(label, row * size + left, row * size + right);
  }

  const left = facade.margin, right = 1.0 - facade.margin, top = facade.roof;
  box("facade", top, 1.0, left, right);
  const width = right - left;
  const floorHeight = (1.0 - top) / facade.floors;
  const bay = width / facade.windows_per_floor;
  if (facade.pillars) {
    const pillar = Math.min(0.04, bay * 0.2);
    box("pillar", top, 1.0, left, left + pillar);
    box("pillar", top, 1.0, right - pillar, right);
  }
  if (facade.cornices) box("cornice", top, top + 0.025, left, right);
  const doorBay = Math.floor(facade.windows_per_floor / 2);
  for (let floor = 0; floor < facade.floors; floor++) {
    const floorBottom = 1.0 - floor * floorHeight;
    const floorTop = floorBottom - floorHeight;
    if (facade.cornices && floor > 0) box("cornice", floorBottom - 0.012, floorBottom, left, right);
    if (floor === 0 && facade.shop) box("shop", floorTop + 0.25 * floorHeight, 1.0, left + 0.02, right - 0.02);
    for (let column = 0; column < facade.windows_per_floor; column++) {
      const centre = left + (column + 0.5) * bay;
      const half = 0.5 * bay * facade.window_width;
      if (floor === 0 && facade.door && column === doorBay) {
        box("door", floorTop + 0.2 * floorHeight, 1.0, centre - half, centre + half);
        continue;
      }
      if (floor === 0 && facade.shop) continue;
      const y0 = floorTop + 0.5 * (1.0 - facade.window_height) * floorHeight;
      const y1 = y0 + facade.window_height * floorHeight;
      if (facade.moldings) {
        const frame = 0.012;
        box("molding", y0 - frame, y1 + frame, centre - half - frame, centre + half + frame);
      }
      if (facade.deco) box("deco", y0 - 0.045, y0 - 0.015, centre - half, centre + half);
      if (facade.blinds) box("blind", y0, y1, centre - 1.8 * half, centre + 1.8 * half);
      box("window", y0, y1, centre - half, centre + half);
      if (facade.balconies.includes(floor)) {
        box("balcony", y1 - 0.35 * (y1 - y0), y1 + 0.01, centre - 1.3 * half, centre + 1.3 * half);
      } else {
        box("sill", y1, y1 + 0.015, centre - 1.15 * half, centre + 1.15 * half);
      }
    }
  }
  return labels;
}

// The RGB bytes (size * size * 3) of a label map in the class colours (p2p.facades.colorize).
export function colorize(labels, colors) {
  const rgb = new Uint8Array(labels.length * 3);
  labels.forEach((label, i) => rgb.set(colors[label], 3 * i));
  return rgb;
}
