// The pix2pix generator in the browser (chapter "Play"): the layers that `python -m p2p export` wrote
// (p2p/export.py), run with TensorFlow.js ops the way p2p.inference.translate runs them in Python:
// one image, BatchNorm normalising it by its own statistics, dropout on unless switched off.
/* global tf */

// What each layer type computes from the outputs of the layers it takes.
const LAYERS = {
  InputLayer: (layer, inputs, image) => image,
  Conv2D: (layer, [x], image, weights) => withBias(tf.conv2d(x, weights.kernel, layer.strides, layer.padding), weights),
  Conv2DTranspose: (layer, [x], image, weights) => {
    const [kernelHeight, kernelWidth, filters] = weights.kernel.shape;
    const side = (size, stride, kernel) => (layer.padding === "same" ? size * stride : (size - 1) * stride + kernel);
    const shape = [1, side(x.shape[1], layer.strides[0], kernelHeight), side(x.shape[2], layer.strides[1], kernelWidth), filters];
    return withBias(tf.conv2dTranspose(x, weights.kernel, shape, layer.strides, layer.padding), weights);
  },
  BatchNormalization: (layer, [x], image, weights) => {
    const {mean, variance} = tf.moments(x, [0, 1, 2]); // this image's statistics, as in training mode
    return tf.batchNorm(x, mean, variance, weights.beta, weights.gamma, layer.epsilon);
  },
  LeakyReLU: (layer, [x]) => tf.leakyRelu(x, layer.negative_slope),
  ReLU: (layer, [x]) => tf.relu(x),
  Dropout: (layer, [x], image, weights, dropout) => (dropout ? tf.dropout(x, layer.rate) : x),
  Concatenate: (layer, inputs) => tf.concat(inputs, layer.axis),
  Activation: (layer, [x]) => ACTIVATIONS[layer.activation](x),
};

const ACTIVATIONS = {tanh: x => tf.tanh(x), linear: x => x};

function withBias(x, weights) {
  return weights.bias ? tf.add(x, weights.bias) : x;
}

// Every float16 value as a float32, indexed by its 16 bits.
function halfTable() {
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
    if (exponent === 0) table[bits] = sign * 2 ** -14 * (fraction / 1024);
    else if (exponent === 31) table[bits] = fraction ? NaN : sign * Infinity;
    else table[bits] = sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }
  return table;
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`${url}: ${response.status} ${response.statusText}; \`make editor\` writes it (python -m p2p export)`);
  }
  return response;
}

// Picks TensorFlow.js's WebAssembly backend (its .wasm files in `vendor`), or its JavaScript one where WebAssembly fails.
export async function useBackend(vendor) {
  tf.wasm.setWasmPaths(new URL(vendor, document.baseURI).href);
  if (!(await tf.setBackend("wasm"))) await tf.setBackend("cpu");
  return tf.getBackend();
}

// Loads an exported generator: {manifest, translate(rgb, {dropout})}, where rgb is a label map's
// size x size x 3 bytes and translate resolves to the photo's floats in [-1, 1], in the same layout.
export async function loadGenerator(url) {
  const manifest = await (await fetchOk(url)).json();
  const bytes = new DataView(await (await fetchOk(new URL(manifest.weights, new URL(url, document.baseURI)))).arrayBuffer());
  const half = halfTable();
  const values = new Float32Array(bytes.byteLength / 2);
  for (let i = 0; i < values.length; i++) values[i] = half[bytes.getUint16(2 * i, true)];
  const layers = manifest.layers.map(layer => {
    const kind = layer.type === "Activation" ? `${layer.activation} activation` : layer.type;
    if (!(layer.type in LAYERS) || (layer.type === "Activation" && !(layer.activation in ACTIVATIONS))) {
      throw new Error(`${url}: layer ${layer.name} is a ${kind}, which the editor cannot run; export a p2p.models.Generator`);
    }
    const weights = {};
    for (const [name, {offset, shape}] of Object.entries(layer.weights)) {
      weights[name] = tf.tensor(values.subarray(offset, offset + shape.reduce((a, b) => a * b, 1)), shape);
    }
    return {layer, weights};
  });
  const size = manifest.image_size;

  async function translate(rgb, {dropout = true} = {}) {
    const photo = tf.tidy(() => {
      const image = tf.sub(tf.div(tf.tensor(rgb, [1, size, size, 3], "float32"), 127.5), 1); // p2p.data.normalize
      const outputs = {};
      for (const {layer, weights} of layers) {
        const inputs = layer.inputs.map(name => outputs[name]);
        outputs[layer.name] = LAYERS[layer.type](layer, inputs, image, weights, dropout);
      }
      return outputs[layers[layers.length - 1].layer.name];
    });
    const values = await photo.data();
    photo.dispose();
    return values;
  }

  return {manifest, translate};
}
