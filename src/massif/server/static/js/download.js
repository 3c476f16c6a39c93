// Save a Blob as a file from the page: a POST's answer (the edited model) or something the page
// drew (an export), which a plain link cannot fetch.
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  // Not at once: the browser may still be reading the URL when click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
