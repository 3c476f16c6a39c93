// JSON over HTTP: every view of the page has a JSON twin on the server (see docs/web.md). In a
// standalone report (massif report) there is no server: window.MASSIF_REPORT holds what the page
// reads, and whatever would compute answers that it needs `massif serve`.
//
// Whatever computes is a POST with a JSON body: the server refuses any other content type (415),
// so an image or a link on another site cannot set off the heavy work.
async function send(url, options) {
  const response = await fetch(url, options);
  if (response.ok) return response;
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  const detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
  const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  error.status = response.status;  // 4xx: the request cannot succeed as it is; 5xx: it failed
  throw error;
}

async function request(url, options) {
  const response = await send(url, options);
  try { return await response.json(); } catch { return null; }
}

// The options of a JSON POST (always with a body, `{}` when there is nothing to say).
function post(body = {}, signal) {
  return { method: "POST", headers: { "content-type": "application/json" },
           body: JSON.stringify(body), signal };
}

const REPORT = window.MASSIF_REPORT ?? null;
export const offline = REPORT !== null;
export const reportKey = REPORT?.key ?? null;
const NEEDS_SERVER = "this is a standalone report: run `massif serve` to compute, delete neurons or search for defenses";
function local(key, value) {
  if (key !== REPORT.key) return Promise.reject(new Error(`this report holds analysis ${REPORT.key} only`));
  return Promise.resolve(value);
}
function served(fn) {
  return offline ? () => Promise.reject(new Error(NEEDS_SERVER)) : fn;
}

export const getInfo = () => (offline ? Promise.resolve(REPORT.info) : request("/index.json"));
export const getGraph = (key) => (offline ? local(key, REPORT.graph) : request(`/graphs/${key}.json`));
export const getPictures = (key) =>
  (offline ? local(key, REPORT.pictures) : request(`/graphs/${key}/pictures.json`));
export const getNode = (key, id) => (offline
  ? local(key, { examples_info: REPORT.examples_info[id] ?? null })
  : request(`/graphs/${key}/nodes/${encodeURIComponent(id)}.json`));
export const getStatus = served((key) => request(`/analyses/${key}.json`));
// body: {mask: [ids], mode, adaptive, preview}
export const getEdit = served((key, body, signal) => request(`/graphs/${key}/edit`, post(body, signal)));
export const warmEditor = served((key) => request(`/graphs/${key}/editor`, post()));
// A defense search is a job on the server: start it, then poll its status.
// `start`: the neurons already deleted, where the search starts (sent only when there are some).
export const startDefense = served((key, budget, mode, start = []) =>
  request(`/graphs/${key}/defense`, post({ budget, mode, ...(start.length ? { start } : {}) })));
export const getDefense = served((id) => request(`/defenses/${id}.json`));
export const cancelDefense = served((id) => request(`/defenses/${id}/cancel`, post()));
// Deletion curves: a job that computes them, or one done at once with the saved ones.
export const startCurves = served((key) => request(`/graphs/${key}/curves`, post()));
export const getCurvesJob = served((id) => request(`/curves/${id}.json`));
export const cancelCurves = served((id) => request(`/curves/${id}/cancel`, post()));
// Checks (stronger attacks that know the mask) of a deletion: a job; body {mask, mode, checks}.
export const startChecks = served((key, body) => request(`/graphs/${key}/checks`, post(body)));
export const getChecks = served((id) => request(`/checks/${id}.json`));
export const cancelChecks = served((id) => request(`/checks/${id}/cancel`, post()));
// The edited model as a Blob (the file's bytes, not JSON).
export async function getEditedModel(key, body) {
  if (offline) throw new Error(NEEDS_SERVER);
  const response = await send(`/graphs/${key}/edited-model.pt`, post(body));
  return response.blob();
}
export function findAnalysis(params) {
  if (offline) return Promise.reject(new Error(NEEDS_SERVER));
  return request(`/analyses.json?${new URLSearchParams(params)}`);
}
export const getGallery = served((key, k) => request(`/graphs/${key}/images`, post({ k })));
export const getImage = served((key, position) => request(`/graphs/${key}/images/${position}`, post()));
export const datasetImageUrl = (key, index) => `/graphs/${key}/dataset/${index}.png`;
export const getComparison = served((params) =>
  request(`/compare.json?${new URLSearchParams(params)}`));
export const startAnalysis = served((params) => request("/analyses", post(params)));
export const cancelAnalysis = served((key) => request(`/analyses/${key}/cancel`, post()));
// An analysis's numbers as `massif report --numbers` writes them (with its saved deletion
// curves, or null); params: {k, pins, deleted}.
export const getNumbers = served((key, params = {}) =>
  request(`/graphs/${key}/numbers.json?${new URLSearchParams(params)}`));
