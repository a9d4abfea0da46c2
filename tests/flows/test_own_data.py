"""Bring your own data: a new use case is one params.yaml section, run to a champion by
configuration alone (renamed columns, a derived timestamp feature, injected nulls, a string label
with its class of interest), then a change of columns takes the gate's on_schema_change path."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from components.config import load_settings
from flows.cli import app
from tests.conftest import FAST, intent_slice

pytestmark = pytest.mark.integration

MONTHS = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "June": 6, "Jul": 7, "Aug": 8, "Sep": 9,
          "Oct": 10, "Nov": 11, "Dec": 12}

# everything a data scientist writes for a new binary tabular use case (README: Bring your own data)
SECTION = """
  shop:
    task: binary
    model: {builder: tabular, baseline: gradient_boosting}
    card:
      title: Orders from web visits (renamed UCI Online Shoppers)
      licence: CC BY 4.0 (UCI Online Shoppers, Sakar et al. 2019)
      business_terms: {rows: visits, positives: orders}
      class_of_interest: "yes"
    data:
      source: data/shop/visits.csv
      transforms:
        - {op: parse_time, column: started_at}
        - {op: time_part, column: started_at, parts: [hour, weekday]}
        - {op: drop, columns: [started_at]}
    validate:
      label: ordered
      columns:
        ordered: {type: str, allowed: ["yes", "no"]}
        page_value: {type: float, min: 0, max: 1e4, max_null_fraction: 0.3}
        product_seconds: {type: float, min: 0, max: 1e5, max_null_fraction: 0.3}
        exit_rate: {type: float, min: 0, max: 1}
        visitor: {type: str, max_null_fraction: 0.3}
        started_at_hour: {type: int, min: 0, max: 23}
    features:
      numeric: [page_value, product_seconds, exit_rate]
      log_scaled: [page_value, product_seconds]
      categorical: [visitor, month, started_at_hour, started_at_weekday]
      slices: [visitor]
"""
RUN = {**FAST, "use_cases.shop.train.max_epochs": 8, "use_cases.shop.gate.baseline_policy": "advisory"}


def shop_visits(rows: int = 2500) -> pd.DataFrame:
    """The real shoppers slice as another shop would export it: other names, a timestamp, a yes/no
    label and about 10% empty fields in three columns."""
    frame = intent_slice(rows).reset_index(drop=True)
    index = np.arange(len(frame))
    started = [f"2016-{MONTHS[m]:02d}-{i % 28 + 1:02d}T{i % 24:02d}:{i * 7 % 60:02d}:00"
               for i, m in zip(index, frame["Month"], strict=True)]
    visits = pd.DataFrame({
        "started_at": started, "page_value": frame["PageValues"], "product_seconds": frame["ProductRelated_Duration"],
        "exit_rate": frame["ExitRates"], "visitor": frame["VisitorType"], "month": frame["Month"],
        "ordered": np.where(frame["Revenue"], "yes", "no"),
    })
    rng = np.random.default_rng(3)
    for column in ("page_value", "product_seconds", "visitor"):
        visits.loc[rng.random(len(visits)) < 0.1, column] = None
    return visits


def export_renamed(project, visits: pd.DataFrame, column: str, file: str) -> None:
    """The shop's new export names the visitor column ``column``; its section is edited to match."""
    visits.rename(columns={"visitor": column}).to_csv(project / "data" / "shop" / file, index=False)
    section = SECTION.replace("visitor:", f"{column}:").replace("[visitor", f"[{column}").replace("visits.csv", file)
    text = (project / "params.yaml").read_text(encoding="utf-8")
    start = text.index("\n  shop:\n")
    (project / "params.yaml").write_text(text[:start] + section, encoding="utf-8")


def wait_for_pending_review(client, name: str, version: str, worker: threading.Thread) -> None:
    """Until the version's review is pending and its flow run is Paused."""
    from prefect import get_client

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.is_alive():
        found = client.search_model_versions(f"name='{name}'")
        tags = next((v.tags for v in found if str(v.version) == version), {})
        if tags.get("review.status") == "pending":
            with get_client(sync_client=True) as prefect:
                if prefect.read_flow_run(tags["prefect_flow_run_id"]).state.is_paused():
                    return
        time.sleep(1)
    raise AssertionError(f"{name} v{version} never paused for review")


def _ledger_actions(name: str) -> list[tuple[str, str]]:
    from components.release.ledger import read_ledger

    return [(e.action, e.to_version) for e in read_ledger(load_settings(), name)]


def test_a_params_section_alone_takes_new_data_to_a_champion_and_through_a_schema_change(project):
    import mlflow

    from components.release.registry import connect
    from flows.retrain import retrain

    (project / "data" / "shop").mkdir(parents=True)
    visits = shop_visits()
    visits.to_csv(project / "data" / "shop" / "visits.csv", index=False)
    with (project / "params.yaml").open("a", encoding="utf-8") as params:
        params.write(SECTION)

    # funnel list shows the new section with its task and title
    listed = CliRunner().invoke(app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    shop = next(e for e in json.loads(listed.stdout) if e["use_case"] == "shop")
    assert (shop["valid"], shop["task"], shop["data"]["kind"]) == (True, "binary", "local")

    first = retrain("shop", RUN)
    assert first["champion_version"] == "1"
    client = connect(load_settings())
    version = client.get_model_version("shop", "1")
    card = version.description
    assert "Orders from web visits (renamed UCI Online Shoppers)" in card
    assert "CC BY 4.0 (UCI Online Shoppers, Sakar et al. 2019)" in card
    # the label is 1 for the class of interest ("yes": orders), so capture counts orders
    metrics = json.loads((project / "reports" / "shop" / "metrics.json").read_text())
    assert metrics["model"]["roc_auc"] > 0.75
    review = (project / "reports" / "shop" / "review-v1.md").read_text()
    assert "of visits by score captures" in review
    assert "of orders" in review
    # the derived features were trained on, and the snapshot carries the fitted transforms
    assert {"started_at_hour", "started_at_weekday"} <= {t.name for t in mlflow.keras.load_model("models:/shop/1").inputs}
    assert "started_at" not in pd.read_parquet(project / "data" / "snapshots" / "shop" / "snapshot.parquet").columns

    # raw rows (a timestamp string, empty fields) score through models:/shop@champion as they
    # are, and the same as the offline features of those rows through the Keras model
    model = mlflow.pyfunc.load_model("models:/shop@champion")
    raw = visits.drop(columns=["ordered"]).head(40)
    online = np.asarray(model.predict(raw))
    from components.data.ingest import load_transforms, snapshot_transforms
    from components.models.scorer import RowScorer

    snapshot = pd.read_parquet(project / "data" / "snapshots" / "shop" / "snapshot.parquet")
    offline_rows = load_transforms(snapshot_transforms(snapshot)).apply(raw)
    offline = RowScorer(mlflow.keras.load_model("models:/shop/1")).score(offline_rows)
    assert np.all(np.isfinite(online))
    np.testing.assert_allclose(online, offline, rtol=1e-5)

    # the shop renames a column: the champion cannot score the new data; with on_schema_change
    # floors the gate says so in one line and promotes on the floors and the baseline check
    export_renamed(project, visits, "visitor_kind", "visits_v2.csv")
    second = retrain("shop", {**RUN, "use_cases.shop.gate.on_schema_change": "floors"})
    assert second["champion_version"] == "2"
    tags = client.get_model_version("shop", "2").tags
    assert tags["gate.schema_change"] == ("schema change: champion v1 takes 7 columns; the new data lacks 1: visitor")
    assert "on_schema_change: floors" in tags["gate.beats_champion"]
    assert _ledger_actions("shop")[-1] == ("promote (schema change)", "2")
    for value in ("Returning_Visitor", "New_Visitor", "2016-"):  # no data values in the decision
        assert not any(value in text for text in tags.values())

    # with the default (review) the run waits for a reviewer; funnel review approve promotes it
    export_renamed(project, visits, "kind", "visits_v3.csv")
    waiting = {**RUN, "use_cases.shop.gate.review_poll_s": 1, "use_cases.shop.gate.review_timeout_s": 240}
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(result=retrain("shop", waiting)), daemon=True)
    worker.start()
    wait_for_pending_review(client, "shop", "3", worker)
    assert _ledger_actions("shop")[-1] == ("promote (schema change)", "2")  # nothing moved while paused
    answer = CliRunner().invoke(app, ["review", "approve", "shop", "3", "--reason", "new export format checked"])
    assert answer.exit_code == 0, answer.output
    worker.join(timeout=300)
    assert outcome["result"]["champion_version"] == "3"
    assert _ledger_actions("shop")[-1] == ("approve (schema change)", "3")

    # a broken section is listed with the reason (and exit code 1), the others still listed
    with (project / "params.yaml").open("a", encoding="utf-8") as params:
        params.write("\n  broken:\n    task: binary\n    model: {builder: tabulr, baseline: gradient_boosting}\n    card: {title: x}\n"
                     "    data: {source: data/shop/visits.csv}\n    validate: {label: ordered, columns: {}}\n")
    listed = CliRunner().invoke(app, ["list", "--json"])
    assert listed.exit_code == 1
    entries = {e["use_case"]: e for e in json.loads(listed.stdout)}
    assert entries["shop"]["valid"]
    assert "unknown builder 'tabulr'" in entries["broken"]["error"]
