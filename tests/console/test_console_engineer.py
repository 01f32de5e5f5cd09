"""The engineer in the browser: the blast radius of a subject or a dataset version as a picture of the lineage and a
table, and a dataset version's preflight with what blocks it."""

from __future__ import annotations

from lethe.api import Role
from tests.console.browsing import Tab
from tests.lethe.test_api import EMAIL, RAW


def test_the_blast_radius_of_a_subject_is_a_picture_and_a_table(console, browser, screenshots):
    with Tab(browser, console, screenshots, Role.ENGINEER) as tab:
        tab.open("/console/engineer", "engineer-start")
        sent = []
        tab.page.on("request", lambda r: sent.append((r.method, r.url)))
        tab.page.locator("#email").fill(EMAIL)
        tab.page.get_by_role("button", name="Show the blast radius").click()
        tab.page.wait_for_load_state()
        assert ("POST", console["url"] + "/console/engineer/blast-radius") in sent
        assert not [raw for raw in RAW if raw in tab.page.content().lower() or raw in tab.page.url.lower()]
        svg = tab.page.locator("svg.lineage")
        titles = [t.text_content() for t in svg.locator("g.node title").all()]
        assert {"t-0000", "t-0005", "t-0015", console["dataset"], "a-merged-0", "support-bot"} <= set(titles)
        assert "t-0010" not in titles  # held out: in no shard
        assert svg.locator("line").count() >= 10  # records → shards → dataset → runs → adapters → merged → deployment
        assert [t.text_content() for t in svg.locator("text[font-weight='600']").all()] == [
            "records", "shards", "dataset versions", "fine-tune runs", "adapters", "merged adapters", "deployments"]
        table = tab.page.locator("table").first.inner_text()
        assert "support-bot at https://bot.example.com/v1" in table and "t-0015" in table
        assert "1 subject key(s) found" in tab.text()
        tab.check("engineer-blast-subject")
        tab.open("/console/engineer")
        tab.page.locator("#email").fill("nobody-here@example.org")
        tab.page.get_by_role("button", name="Show the blast radius").click()
        assert "Nothing in the lineage graph reaches this start" in tab.text()


def test_a_dataset_versions_blast_radius_and_preflight(console, browser, screenshots):
    dataset = console["dataset"]
    with Tab(browser, console, screenshots, Role.ENGINEER) as tab:
        tab.open("/console/engineer")
        tab.page.get_by_role("button", name=f"blast radius of {dataset}").click()
        assert f"From dataset version {dataset}" in tab.text()
        assert tab.page.locator("svg.lineage g.node").count() >= 1 + 4 + 4 + 4  # dataset, shards, runs, adapters
        tab.check("engineer-blast-dataset")
        tab.open("/console/engineer")
        tab.page.get_by_role("link", name=f"preflight of {dataset}").click()
        verdict = tab.page.locator("#verdict").inner_text()
        blocking = tab.page.locator("#blocking").all_inner_texts() if "Blocked" in verdict else []
        assert ("Safe" in verdict) == (not blocking)
        tab.check("engineer-preflight")
        missing = tab.open("/console/engineer/datasets/nope:0/preflight")
        assert missing.status == 404 and "nope:0" not in tab.text() and "lethe datasets" in tab.text()
        bad = tab.post("/console/engineer/blast-radius", {"csrf_token": tab.csrf(), "depth": "99", "dataset": dataset})
        assert bad.status == 422 and "depth:" in bad.text()
