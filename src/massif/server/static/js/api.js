// JSON over HTTP: every view of the page has a JSON twin on the server (see docs/web.md).
//
// Whatever computes is a POST with a JSON body: the server refuses any other content type (415),
// so an image or a link on another site cannot set off the heavy work.
async function send(url, options) {
  const response = await fetch(url, options);
  if (response.ok) return response;
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  const detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
  throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
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

export const getInfo = () => request("/index.json");
export const getGraph = (key) => request(`/graphs/${key}.json`);
export const getPictures = (key) => request(`/graphs/${key}/pictures.json`);
export const getNode = (key, id) => request(`/graphs/${key}/nodes/${encodeURIComponent(id)}.json`);
export const getStatus = (key) => request(`/analyses/${key}.json`);
// body: {mask: [ids], mode, adaptive, preview}
export const getEdit = (key, body, signal) => request(`/graphs/${key}/edit`, post(body, signal));
export const warmEditor = (key) => request(`/graphs/${key}/editor`, post());
// A defense search is a job on the server: start it, then poll its status.
export const startDefense = (key, budget, mode) =>
  request(`/graphs/${key}/defense`, post({ budget, mode }));
export const getDefense = (id) => request(`/defenses/${id}.json`);
export const cancelDefense = (id) => request(`/defenses/${id}/cancel`, post());
// The edited model as a Blob (the file's bytes, not JSON).
export async function getEditedModel(key, body) {
  const response = await send(`/graphs/${key}/edited-model.pt`, post(body));
  return response.blob();
}
export function findAnalysis(params) {
  return request(`/analyses.json?${new URLSearchParams(params)}`);
}
export const startAnalysis = (params) => request("/analyses", post(params));
