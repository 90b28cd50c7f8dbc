// The viewer page: choose an image and a model, segment, and see the masks in NiiVue's three views.
// document.body.dataset.state tells a test where the page is: busy, ready, image, segmented, error.
"use strict";

const $ = (id) => document.getElementById(id);
const nv = new niivue.Niivue({
  backColor: [0, 0, 0, 1],
  crosshairColor: [1, 1, 1, 0.5], // grey: never confused with a mask colour
  isColorbar: false,
  multiplanarShowRender: 0, // never: axial, coronal and sagittal only
  multiplanarLayout: 3, // one row
  dragAndDropEnabled: false, // files go through the form, so the server sees what is shown
});
let source = null; // {path} or {file}: the image shown, sent again to /api/segment
let mask = null; // the label volume shown over it
let maxUploadBytes = Infinity;

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").classList.toggle("error", isError);
  if (isError) document.body.dataset.state = "error";
}

async function readJSON(response) {
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error);
  return body;
}

function option(value, text, disabled = false) {
  const element = new Option(text, value);
  element.disabled = disabled;
  return element;
}

async function loadLists() {
  const [files, models] = await Promise.all([fetch("/api/files").then(readJSON), fetch("/api/models").then(readJSON)]);
  maxUploadBytes = files.max_upload_mb * 2 ** 20;
  files.files.forEach((path) => $("file").add(option(path, path)));
  for (const model of models.models) {
    const text = model.error ? `${model.name}: ${model.error}` : `${model.name} (${model.task}; ${model.inputs.join(" + ")})`;
    $("model").add(option(model.name, text, Boolean(model.error)));
  }
  if (!models.models.length) say("No trained model found under the results folder.", true);
}

function clearResult() {
  mask = null;
  $("legend").tBodies[0].replaceChildren();
  $("timing").textContent = "";
}

async function showImage(buffer, name, chosen) {
  source = null;
  $("segment").disabled = true;
  clearResult();
  const image = await niivue.NVImage.loadFromUrl({ url: buffer, name });
  while (nv.volumes.length) nv.removeVolumeByIndex(0);
  nv.addVolume(image);
  source = chosen;
  $("segment").disabled = !$("model").value;
  say(`${name}: ${image.dims.slice(1, 4).join(" × ")} voxels`);
  document.body.dataset.state = "image";
}

async function openPath(path) {
  if (!path) return;
  $("upload").value = "";
  const response = await fetch(`/api/image?path=${encodeURIComponent(path)}`);
  if (!response.ok) return readJSON(response);
  await showImage(await response.arrayBuffer(), path.split("/").pop(), { path });
}

async function openUpload(file) {
  if (!file) return;
  $("file").value = "";
  if (file.size > maxUploadBytes) throw new Error(`${file.name}: over the viewer's limit of ${maxUploadBytes / 2 ** 20} MiB`);
  if (!/\.nii(\.gz)?$/i.test(file.name)) throw new Error(`${file.name}: not a NIfTI file (.nii or .nii.gz)`);
  await showImage(await file.arrayBuffer(), file.name, { file }).catch((error) => {
    throw new Error(`${file.name}: not a readable 3D NIfTI image (${error.message})`);
  });
}

function moveTo(comMm) {
  nv.scene.crosshairPos = nv.mm2frac(comMm);
  nv.drawScene();
}

function legendRow(structure) {
  const row = document.createElement("tr");
  row.dataset.structure = structure.name;
  const swatch = `<span class="swatch" style="background: rgb(${structure.colour.join(",")})"></span>`;
  const com = structure.com_mm ? structure.com_mm.map((value) => value.toFixed(2)) : ["–", "–", "–"];
  const cells = [swatch, structure.name, structure.volume_mm3.toFixed(1), ...com];
  row.innerHTML = cells.map((cell, index) => `<td class="${["", "name", "volume", "com-x", "com-y", "com-z"][index]}">${cell}</td>`).join("");
  if (structure.com_mm) row.addEventListener("click", () => moveTo(structure.com_mm));
  return row;
}

function labelColormap(structures) {
  const lut = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (const { value, colour, name } of structures) {
    [lut.R, lut.G, lut.B].forEach((channel, index) => channel.push(colour[index]));
    lut.A.push(255);
    lut.I.push(value);
    lut.labels.push(name);
  }
  return lut;
}

async function showMask(result) {
  const labels = await niivue.NVImage.loadFromBase64({
    base64: result.labels_nii_gz_base64, name: "labels.nii.gz", opacity: Number($("opacity").value),
  });
  labels.setColormapLabel(labelColormap(result.structures));
  if (mask) nv.removeVolume(mask);
  nv.addVolume(labels);
  mask = labels;
  $("legend").tBodies[0].replaceChildren(...result.structures.map(legendRow));
  const found = result.structures.find((structure) => structure.com_mm);
  if (found) moveTo(found.com_mm);
  else say("The model found none of its structures in this image.");
}

async function segmentImage() {
  const form = new FormData();
  form.append("model", $("model").value);
  if (source.file) form.append("file", source.file);
  else form.append("path", source.path);
  const clicked = performance.now();
  $("segment").disabled = true;
  say(`Segmenting with ${$("model").value}…`);
  try {
    const result = await fetch("/api/segment", { method: "POST", body: form }).then(readJSON);
    await showMask(result);
    await new Promise(requestAnimationFrame); // the mask is on screen
    const seconds = (performance.now() - clicked) / 1000;
    window.viewerTiming = { clickToMaskSeconds: seconds, inferenceSeconds: result.inference_seconds };
    $("timing").textContent = `Click to mask ${seconds.toFixed(2)} s, inference ${result.inference_seconds.toFixed(3)} s `
      + `(${result.model} on ${result.device}, ${result.threads} threads)`;
    say(`${result.file}: segmented by ${result.model}`);
    document.body.dataset.state = "segmented";
  } finally {
    $("segment").disabled = false;
  }
}

// every action marks the page busy until it is done (an action with nothing to do leaves the state as
// it was), and reports its failure on the page, which stays usable
const guarded = (action) => async (event) => {
  const before = document.body.dataset.state;
  document.body.dataset.state = "busy";
  try {
    await action(event);
  } catch (error) {
    say(error.message, true);
  }
  if (document.body.dataset.state === "busy") document.body.dataset.state = before;
};

$("file").addEventListener("change", guarded((event) => openPath(event.target.value)));
$("upload").addEventListener("change", guarded((event) => openUpload(event.target.files[0])));
$("model").addEventListener("change", () => { $("segment").disabled = !source || !$("model").value; });
$("segment").addEventListener("click", guarded(segmentImage));
$("opacity").addEventListener("input", (event) => { if (mask) nv.setOpacity(nv.volumes.indexOf(mask), Number(event.target.value)); });

guarded(async () => {
  await nv.attachToCanvas($("views"));
  nv.setSliceType(nv.sliceTypeMultiplanar);
  await loadLists();
  document.body.dataset.state = "ready";
})();
