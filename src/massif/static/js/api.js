// JSON over HTTP: every view of the page has a JSON twin on the server (see docs/web.md).
async function request(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

export const getInfo = () => request("/index.json");
export const getGraph = (key) => request(`/graphs/${key}.json`);
export const getPictures = (key) => request(`/graphs/${key}/pictures.json`);
export const getStatus = (key) => request(`/analyses/${key}.json`);
export const getEdit = (key, params, signal) =>
  request(`/graphs/${key}/edit.json?${new URLSearchParams(params)}`, { signal });
export const warmEditor = (key) => request(`/graphs/${key}/editor`, { method: "POST" });
export const getDefense = (key, budget) => request(`/graphs/${key}/defense.json?budget=${budget}`);
export function findAnalysis(params) {
  return request(`/analyses.json?${new URLSearchParams(params)}`);
}
export function startAnalysis(params) {
  return request("/analyses", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(params),
  });
}
