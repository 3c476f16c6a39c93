"""Every number with its scale or unit, every chart with its axes and a key (issue 25, item 5), on
the real page at 1280×800 and 1920×1080: the header's, the slider's and the summary's strength on
the attack's scale (the registry's words), the ASR and the flipped neurons explained by an ⓘ that
Tab and Enter reach, the neuron card's vulnerability ("of 1: flips at strength k of K"), flip
strength, activation and importance with their units, the deletion's rows, the images tab's
perturbation size and the table's column titles. Every chart drawn (the slider's ASR chart, the
card's two, the deletion's, the defense's two, the deletion curves) has both axes with ticks and
titles, and a key entry for each series, marker line and kind of dot it draws, whose sample has
the same stroke, dashes, width, opacity and fill as what it names. Screenshots of the left panel,
the card and the results box in ``test-artifacts/``."""

from __future__ import annotations

import math
import re

import httpx
import pytest

from massif.attacks import ATTACKS
from tests.helpers.browser import ARTIFACTS, graph_of, in_view, open_page, watched_page

pytestmark = pytest.mark.timeout(420, func_only=True)  # the test alone, not the site's set-up
SIZES = [(1280, 800), (1920, 1080)]
CHARTS = ["asr-chart", "importance-chart", "activation-chart", "edit-chart", "defense-chart",
          "defense-front", "curves-chart"]


def fmt(x: float) -> str:
    """store.js formatNumber: three decimals at most, trailing zeros dropped; below 0.01 and from
    10,000 on, JavaScript's toExponential(2) ("1.23e-3")."""
    a = abs(x)
    if a != 0 and (a < 0.01 or a >= 1e4):
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:.2e}")
    return f"{float(f'{x:.3f}'):g}"


def pct(x: float) -> str:
    return f"{math.floor(100 * x + 0.5)}%"


def words(text: str) -> str:
    return " ".join(text.split())


# For each chart: its ticks and axis titles, and every element drawn with a data-key checked
# against its key sample (the same data-key and data-shape), property by property; drawn lines
# and areas without a key, and key entries naming nothing drawn.
CHECK_CHARTS = """(ids) => ids.map((id) => {
  const svg = document.getElementById(id);
  const shown = (el) => !el.closest('[display=none]') && getComputedStyle(el).display !== 'none';
  const outside = (el) => !el.closest('g.key') && !el.closest('g.axis');
  const props = ['stroke', 'strokeDasharray', 'strokeWidth', 'strokeOpacity', 'fill',
                 'fillOpacity', 'opacity'];
  const style = (el) => {
    const cs = getComputedStyle(el), o = {};
    for (const p of props) o[p] = cs[p];
    if (el.tagName === 'circle') o.r = cs.r;
    return o;
  };
  const drawn = [...svg.querySelectorAll('path, line, circle, rect')]
    .filter((el) => outside(el) && shown(el));
  const mismatches = [], unkeyed = [], used = new Set();
  for (const el of drawn) {
    const key = el.dataset.key;
    if (!key) {
      const marker = el.tagName === 'circle' && el.parentElement.querySelector('path[data-key]');
      if (!marker) unkeyed.push(el.outerHTML.slice(0, 120));
      continue;
    }
    used.add(key);
    const sample = svg.querySelector(`g.key g.entry[data-key="${key}"] ` +
                                     `.sample[data-shape="${el.dataset.shape}"]`);
    if (!sample) { mismatches.push(`${key}/${el.dataset.shape}: no key sample`); continue; }
    const a = style(el), b = style(sample);
    for (const p of Object.keys(a)) {
      if (a[p] !== b[p]) mismatches.push(`${key}/${el.dataset.shape} ${p}: ${a[p]} != ${b[p]}`);
    }
  }
  const entries = [...svg.querySelectorAll('g.key g.entry')];
  return {
    id, drawn: drawn.length, mismatches, unkeyed,
    unused: entries.map((e) => e.dataset.key).filter((k) => !used.has(k)),
    labels: entries.map((e) => e.textContent),
    xTicks: svg.querySelectorAll('.axis.x .tick').length,
    yTicks: svg.querySelectorAll('.axis.y .tick').length,
    xTitle: svg.querySelector('.axis-title.x')?.textContent ?? '',
    yTitle: svg.querySelector('.axis-title.y')?.textContent ?? '',
  };
})"""


def info_text(page, name: str) -> str:
    """The ⓘ's text: its title, which must equal its popover's."""
    button = page.locator(f'button.info[data-info="{name}"]')
    title = button.get_attribute("title")
    assert title and title == page.locator(f"#info-{name}").text_content(), name
    return title


def open_info(page, name: str) -> None:
    """Reach the ⓘ by keyboard (it is a button: Tab stops on it) and open it with Enter."""
    button = page.locator(f'button.info[data-info="{name}"]')
    assert button.evaluate("b => b.tabIndex") >= 0
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#info-{name}:popover-open")
    assert in_view(page, f"#info-{name}"), name


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_number_has_its_scale_and_every_chart_its_axes_and_key(site, browser, width,
                                                                     height):
    key, url = site["default"], site["url"]
    graph = graph_of(site, key)
    K = graph.attack.strengths
    last = len(K) - 1
    eps_max = fmt(K[-1])
    benign, target = graph.benign.name, graph.target.name
    spec = ATTACKS["fgm"]
    assert (graph.attack.name, graph.attack.norm) == (spec.name, spec.norm)
    scale = f"{spec.strength.removeprefix('ε: ')}, on images whose pixels are in [0, 1]"
    size = f"{width}x{height}"
    curves_file = site["ws"].graph_path(key).parent / "curves.json"
    had_curves = curves_file.is_file()
    page, errors = watched_page(browser, width, height)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        open_page(page, f"{url}/graphs/{key}")
        # The header's ε_max: on the attack's scale, in the title's hover text.
        assert f"ε (L2): {scale}" in page.locator("#title").get_attribute("title")

        # The slider: ε with its norm; the ASR and flipped count explained by an ⓘ.
        assert page.locator("#eps").text_content() == f"ε = {eps_max}"
        assert page.locator("#eps-unit").text_content() == "(L2)"
        assert page.locator("#eps-unit").get_attribute("title") == f"ε: {scale}"
        asr = graph.metrics.attack_success_rate[-1]
        correct = math.floor(graph.metrics.clean_accuracy * graph.benign.n_images + 0.5)
        moving = [n for n in graph.nodes if n.group != "shared"]
        done = sum(n.flip_strength is not None and n.flip_strength <= K[-1] + 1e-9
                   for n in moving)
        text = info_text(page, "asr")
        for part in (f"Strength ε = {eps_max} (L2): {scale}.",
                     f"ASR (attack success rate) {pct(asr)}: of the {correct} {benign} images "
                     "the model classifies correctly when clean",
                     f"makes it classify as {target}.",
                     f"{done} of {len(moving)} neurons flipped: the suppressed and emphasized "
                     "neurons whose flip strength is at most this strength"):
            assert part in text, (part, text)
        open_info(page, "asr")
        page.screenshot(path=str(ARTIFACTS / f"explained-left-{size}.png"))
        page.keyboard.press("Escape")
        page.wait_for_selector("#info-asr:not(:popover-open)", state="attached")

        # The summary: the strength's scale, what each share is of, the margins in logits.
        summary = lambda cls: words(page.locator(f"#details dd.{cls}").text_content())  # noqa: E731
        assert summary("attack") == f"targeted FGM up to ε = {eps_max} (L2: {scale})"
        assert summary("images") == (f"{graph.benign.n_images} {benign} images, attacked at "
                                     f"each of {last} strengths")
        assert summary("clean-accuracy") == (f"{pct(graph.metrics.clean_accuracy)} of them "
                                             f"classified {benign}")
        assert summary("asr") == (f"{pct(asr)} of the {correct} classified {benign} when clean "
                                  f"end as {target} at ε = {eps_max}")
        assert "in logits" in summary("faithfulness")

        # The card of an emphasized neuron that flips after the weakest strength.
        node = max((n for n in graph.nodes if n.group == "emphasized"),
                   key=lambda n: (n.flip_strength, n.id))
        flip_at = K.index(node.flip_strength)
        assert node.vulnerability == pytest.approx(1 - (flip_at - 1) / last)
        page.locator(f'#graph-svg .node[data-id="{node.id}"]').click()
        page.mouse.move(2, 2)
        page.wait_for_function(f"document.querySelector('#node-id')?.textContent === '{node.id}'")
        card = lambda sel: words(page.locator(sel).text_content())  # noqa: E731
        assert card("#node-vulnerability") == (
            f"{fmt(node.vulnerability)} of 1: flips at strength {flip_at} of {last}"
            + (", the weakest" if flip_at == 1 else ""))
        assert card("#node-flip") == f"{fmt(node.flip_strength)} of εmax {eps_max} (L2)"
        a0, a1 = node.activation[0], node.activation[-1]
        assert card("#node-activation").startswith(f"{fmt(a0)} → {fmt(a1)}")
        assert card("#node-activation").endswith(f"at ε = {eps_max} (layer's units)")
        i0, i1 = node.importance_target[0], node.importance_target[-1]
        assert card("#node-importance").startswith(f"{fmt(i0)} → {fmt(i1)}")
        assert card("#node-importance").endswith(f"toward {target} (logit units)")
        assert f"Vulnerability = 1 − (k − 1)/{last}, from 1/{last} to 1, no unit" in \
            info_text(page, "vulnerability")
        assert f"ε (L2): {scale}" in info_text(page, "flip")
        assert "In the layer's own units, which have no fixed scale" in \
            info_text(page, "activation")
        assert "in logit units" in info_text(page, "importance")
        for name in ("edges-in", "edges-out"):
            assert f"over the images attacked at ε_max = {eps_max}" in info_text(page, name)
        open_info(page, "vulnerability")
        page.screenshot(path=str(ARTIFACTS / f"explained-card-{size}.png"))
        page.keyboard.press("Escape")

        # A deletion, a defense search from it and the deletion curves: the results box.
        deleted = [n.id for n in graph.nodes if n.group == "emphasized"][:2]
        page.wait_for_selector("html[data-editor=ready]", timeout=120_000)
        page.evaluate(f"window.massif.store.set({{ masked: {deleted!r} }})")
        page.wait_for_selector(f"#edit-result[data-mask='{','.join(deleted)}'][data-phase=full]",
                               timeout=120_000)
        titles = {row.get_attribute("class"): row.locator("th").get_attribute("title")
                  for row in page.locator("#edit-result tbody tr").all()}
        assert titles["acc-benign"].startswith(f"the share of the {graph.benign.n_images} clean "
                                               f"{benign} images classified as {benign}")
        assert "clean images of all classes classified correctly" in titles["acc-all"]
        for cls in ("asr-transfer", "asr-adaptive"):
            assert f"ε = {eps_max} (L2: {scale}). ASR: among the {benign} images" in titles[cls]
        page.locator("#budget").fill("1")
        page.locator("#defense").click()
        page.wait_for_selector("html[data-defense=ready]", timeout=300_000)
        page.locator("#curves-run").click()
        page.wait_for_selector("html[data-curves=ready]", timeout=300_000)
        heads = page.locator("#curves-table thead th[title]")
        assert heads.count() == 2
        for head in heads.all():
            assert head.get_attribute("title").startswith("from 0 to 1, a share like the ASR")

        # Every chart: both axes with ticks and titles, a key entry per thing drawn, alike.
        charts = page.evaluate(CHECK_CHARTS, CHARTS)
        for c in charts:
            assert c["drawn"] > 0, c
            assert c["xTicks"] >= 2 and c["yTicks"] >= 2, c
            assert c["xTitle"].strip() and c["yTitle"].strip(), c
            assert not c["mismatches"] and not c["unkeyed"] and not c["unused"], c
        labels = {c["id"]: c["labels"] for c in charts}
        assert labels["asr-chart"] == ["ASR", "slider's ε"]
        assert labels["importance-chart"] == [f"toward {benign}", f"toward {target}",
                                              "flip strength", "slider's ε"]
        assert labels["edit-chart"] == ["adaptive, before", "adaptive, after",
                                        "transfer, before", "transfer, after", "slider's ε"]
        assert labels["defense-chart"][0] == "greedy picks"
        assert "the front" in labels["defense-front"]
        assert "random: mean ± one spread" in labels["curves-chart"]
        for c in ("asr-chart", "importance-chart", "activation-chart", "edit-chart"):
            assert "(L2)" in page.locator(f"#{c} .axis-title.x").text_content(), c
        for part in ("#edit-chart", "#defense-front", "#curves-chart"):
            page.locator(part).scroll_into_view_if_needed()
            assert in_view(page, part), part
            name = part.removeprefix("#").split("-")[0]
            page.screenshot(path=str(ARTIFACTS / f"explained-results-{name}-{size}.png"))

        # The images tab: the strength's norm, the perturbation's size in it.
        page.locator("#tab-images").click()
        page.wait_for_selector("#gallery .tile")
        status = page.locator("#gallery-status")
        assert status.text_content().endswith(f"flipped at ε = {eps_max} (L2)")
        assert scale in status.get_attribute("title")
        tile = page.locator("#gallery .tile").first
        position = int(tile.get_attribute("data-position"))
        tile.click()
        page.wait_for_selector(f"#image-detail[data-position='{position}']")
        detail = httpx.post(f"{url}/graphs/{key}/images/{position}", json={}, timeout=60).json()
        caption = page.locator("#image-detail figcaption.perturbation")
        norm = fmt(detail["perturbation_norm"][-1])
        assert caption.text_content() == f"perturbation ‖δ‖₂ = {norm}"
        assert f"its L2 length on pixels in [0, 1] (at most ε = {eps_max};" in \
            caption.get_attribute("title")
        assert "softmax probability" in page.locator("#image-detail .verdict").first \
            .get_attribute("title")

        # The table's number columns say their scale in their titles (table.js).
        page.locator("#tab-table").click()
        page.wait_for_selector("#neuron-rows tr")
        column = lambda k: page.locator(f'#neuron-head button[data-key="{k}"]').get_attribute(  # noqa: E731
            "title")
        assert "0–1 (no unit)" in column("vulnerability")
        assert f"from 0 to {eps_max}" in column("flip")
        assert "in percent of the clean value" in column("activation")
        assert "logit units" in column("importance")
    finally:
        page.context.close()
        if not had_curves:  # leave the workspace as found: test_curves_page computes them
            for suffix in (".json", ".svg", ".png"):
                curves_file.with_suffix(suffix).unlink(missing_ok=True)
    assert not errors, errors
