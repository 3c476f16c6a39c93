"""A cancel of a job that has ended (issue 25, *Bad input*): a 409 with a plain message, never
an answer that pretends something was stopped. Also the numbers route's bad views (422)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from massif.server import create_app
from massif.store import Workspace
from tests.helpers.tiny import planted_data, planted_model
from tests.helpers.waiting import settled

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture()
def client(tmp_path):
    ws = Workspace(tmp_path / "ws")
    app = create_app(ws.root, planted_model(), planted_data(), device="cpu", pictures=False)
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def test_cancelling_an_ended_analysis_or_defense_is_a_409_in_words(client):
    key = client.post("/analyses", json={"benign": "benign", "target": "target"}).json()["key"]
    assert settled(client, f"/analyses/{key}.json", 60)["state"] == "done"
    r = client.post(f"/analyses/{key}/cancel", json={})
    assert r.status_code == 409
    assert r.json()["detail"] == (f"analysis {key} is not running (it is done); there is "
                                  "nothing to cancel")
    job = client.post(f"/graphs/{key}/defense", json={"budget": 1}).json()
    assert settled(client, f"/defenses/{job['id']}.json", 120)["state"] == "done"
    r = client.post(f"/defenses/{job['id']}/cancel", json={})
    assert r.status_code == 409
    assert r.json()["detail"] == (f"defense search {job['id']} has ended already (done); there "
                                  "is nothing to cancel")
    assert client.post("/analyses/never-asked-for/cancel", json={}).status_code == 404

    # the numbers of the analysis, as massif report --numbers writes them
    n = client.get(f"/graphs/{key}/numbers.json", params={"k": 1}).json()
    assert n["format"] == "massif-numbers" and n["view"]["strength_index"] == 1
    assert n["curves"] is None
    bad = client.get(f"/graphs/{key}/numbers.json", params={"deleted": "nolayer:1"})
    assert bad.status_code == 422 and "nolayer:1 is not in this analysis" in bad.json()["detail"]
    assert client.get("/graphs/nothing-here/numbers.json").status_code == 404
