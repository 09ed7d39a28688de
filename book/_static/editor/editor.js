// The facade editor of the chapter "Play", in the browser: the controls of p2p.viz.facade_editor draw a
// label map (labelMap, a port of p2p.facades.label_map), a brush paints on it in the CMP class colours,
// an uploaded label map replaces it, and the exported generator paints the photo. Query parameters set
// the controls (?floors=6&shop=1&dropout=0); window.editorReady and window.editor let scripts wait for
// the editor and read its label map and photo.
import {colorize, labelMap} from "./facades.js";
import {loadGenerator, useBackend} from "./generator.js";

const form = document.getElementById("controls");
const status = document.getElementById("status");
const labelCanvas = document.getElementById("labels");
const photoCanvas = document.getElementById("photo");
const BOXES = ["door", "shop", "blinds", "moldings", "deco", "pillars", "cornices"];

for (const [name, value] of new URLSearchParams(location.search)) {
  const control = form.elements[name];
  if (!control || control.type === "file") continue;
  if (control.type === "checkbox") control.checked = !["0", "false", "no", "off"].includes(value);
  else control.value = value;
}

function showValues() {
  for (const output of form.querySelectorAll("output")) output.value = output.previousElementSibling.value;
}

function report(error) {
  status.textContent = `error: ${error.message || error}`;
  console.error(error);
}
window.addEventListener("error", event => report(event.error || event.message));
window.addEventListener("unhandledrejection", event => report(event.reason));

// The Facade of the controls, the other fields at their defaults (as p2p.viz.facade_editor builds it).
function facadeOfControls(defaults) {
  const facade = {...defaults};
  facade.floors = parseInt(form.elements.floors.value, 10);
  facade.windows_per_floor = parseInt(form.elements.windows_per_floor.value, 10);
  facade.window_width = parseFloat(form.elements.window_width.value);
  for (const name of BOXES) facade[name] = form.elements[name].checked;
  facade.balconies = [];
  if (form.elements.balconies.checked) for (let floor = 1; floor < facade.floors; floor += 2) facade.balconies.push(floor);
  return facade;
}

function draw(canvas, pixel) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < canvas.width * canvas.height; i++) {
    for (let channel = 0; channel < 3; channel++) image.data[4 * i + channel] = pixel(3 * i + channel);
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

async function start() {
  const backend = await useBackend("vendor/");
  const generator = await loadGenerator("model/generator.json");
  const {manifest} = generator;
  const size = manifest.image_size;
  labelCanvas.width = labelCanvas.height = photoCanvas.width = photoCanvas.height = size;
  document.getElementById("source").textContent = `Generator: ${manifest.source}`;

  let rgb = new Uint8Array(size * size * 3); // the label map, in the class colours
  let photo = null, milliseconds = null, origin = "", running = null, again = false;
  let brushClass = manifest.classes.indexOf("window");

  // Translates the label map; asked again while it runs, it translates once more when done.
  function paint() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        const begin = performance.now();
        photo = await generator.translate(rgb, {dropout: form.elements.dropout.checked});
        milliseconds = performance.now() - begin;
        draw(photoCanvas, i => Math.round(Math.min(Math.max((photo[i] + 1) * 127.5, 0), 255)));
      } while (again);
      running = null;
      status.textContent = `${origin}; photo painted in ${milliseconds.toFixed(0)} ms (TensorFlow.js, ${backend})`;
    })().catch(error => {
      running = null;
      report(error);
    });
    return running;
  }

  function relabel(newOrigin) {
    origin = newOrigin;
    draw(labelCanvas, i => rgb[i]);
    return paint();
  }

  function redraw() {
    showValues();
    rgb = colorize(labelMap(facadeOfControls(manifest.facade), size, manifest.classes), manifest.colors);
    return relabel("drawn from the controls");
  }

  function brush(event) {
    const box = labelCanvas.getBoundingClientRect();
    const column = Math.floor((event.clientX - box.left) / box.width * size);
    const row = Math.floor((event.clientY - box.top) / box.height * size);
    const radius = Number(form.elements.brush.value) / 2;
    const reach = Math.floor(radius);
    for (let y = Math.max(row - reach, 0); y <= Math.min(row + reach, size - 1); y++) {
      for (let x = Math.max(column - reach, 0); x <= Math.min(column + reach, size - 1); x++) {
        if ((y - row) ** 2 + (x - column) ** 2 <= radius ** 2) rgb.set(manifest.colors[brushClass], 3 * (y * size + x));
      }
    }
    relabel(`painted with the brush (${manifest.classes[brushClass]})`);
  }

  async function upload() {
    const file = form.elements.upload.files[0];
    if (!file) return;
    let picture;
    try {
      picture = await createImageBitmap(file);
    } catch (error) {
      status.textContent = `${file.name}: not an image (${error.message}); choose a PNG or JPEG label map in the CMP colours`;
      return;
    }
    const context = Object.assign(document.createElement("canvas"), {width: size, height: size}).getContext("2d");
    context.imageSmoothingEnabled = false; // nearest neighbour, as the Python editor resizes
    context.drawImage(picture, 0, 0, size, size);
    const rgba = context.getImageData(0, 0, size, size).data;
    rgb = rgb.map((_, i) => rgba[4 * Math.floor(i / 3) + (i % 3)]);
    relabel(`painted ${file.name}`);
  }

  const palette = document.getElementById("palette");
  manifest.classes.forEach((name, index) => {
    const [red, green, blue] = manifest.colors[index];
    const button = Object.assign(document.createElement("button"), {type: "button", textContent: name, title: name});
    button.setAttribute("role", "radio");
    button.setAttribute("aria-checked", String(index === brushClass));
    button.style.background = `rgb(${red}, ${green}, ${blue})`;
    button.style.color = 0.299 * red + 0.587 * green + 0.114 * blue > 140 ? "#000" : "#fff";
    button.addEventListener("click", () => {
      brushClass = index;
      for (const other of palette.children) other.setAttribute("aria-checked", String(other === button));
    });
    palette.append(button);
  });

  form.addEventListener("input", event => {
    if (event.target.name === "brush") showValues();
    else if (event.target.name !== "upload" && event.target.name !== "dropout") redraw();
  });
  form.elements.dropout.addEventListener("change", paint);
  form.elements.upload.addEventListener("change", upload);
  document.getElementById("again").addEventListener("click", paint);
  labelCanvas.addEventListener("pointerdown", event => {
    labelCanvas.setPointerCapture(event.pointerId);
    brush(event);
  });
  labelCanvas.addEventListener("pointermove", event => event.buttons && brush(event));

  window.editor = {
    backend,
    idle: () => running || Promise.resolve(),
    labels: () => rgb,
    photo: () => photo,
    milliseconds: () => milliseconds,
  };
  await redraw();
}

window.editorReady = start().catch(report);
