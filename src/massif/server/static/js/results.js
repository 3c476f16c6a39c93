// The results box at the top of the right-hand panel: the deletion's numbers (edit_result.js)
// over the defense search's (defense.js). It shows whichever of its parts has something to say,
// so they are in view after every click whatever the window.
const $ = (id) => document.getElementById(id);

export function showBoxes() {
  $("results").hidden = $("edit-box").hidden && $("defense-box").hidden && $("curves-box").hidden;
}

// The width the box's charts are drawn at.
export const chartWidth = () => Math.max(200, $("results").clientWidth || 250);
