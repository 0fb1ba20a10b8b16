"""The dataset service: stored files, records, nothing left behind on failure, unique names under a race."""

from __future__ import annotations

import threading

import pytest

import churn_core
from churn_core.errors import ConflictError, ValidationError


def stored_files(p) -> list[str]:
    return p.store.list("datasets")


def test_upload_stores_raw_train_test_and_records_it(platform, sample_csv):
    ds = platform.upload_dataset("telecom", sample_csv, target="Churn", test_size=0.3, seed=42)
    assert sorted(stored_files(platform)) == [
        "datasets/telecom/raw/telecom.csv", "datasets/telecom/test/test.csv",
        "datasets/telecom/train/dataset-schema.json", "datasets/telecom/train/train.csv"]
    assert ds.n_train + ds.n_test == ds.rows and abs(ds.n_test / ds.rows - 0.3) < 0.01
    assert len(ds.sha256) == 64 and ds.columns[0] == "Churn" and len(ds.features) == 10
    train = platform.read_dataset("telecom", "train", typed=True)
    test = platform.read_dataset("telecom", "test", typed=True)
    assert abs(train["Churn"].mean() - test["Churn"].mean()) < 0.02  # stratified
    assert platform.list_datasets()[0].name == "telecom"


def test_reference_dataset(platform, reference_csv):
    ds = platform.upload_dataset("reference", reference_csv.read_bytes())
    assert ds.rows == 3333 and round(ds.churn_rate, 4) == 0.1449
    assert ds.n_test == 1000


def test_bad_file_stores_nothing(platform):
    with pytest.raises(ValidationError):
        platform.upload_dataset("bad", b"")
    with pytest.raises(ValidationError):
        platform.upload_dataset("bad", b'{"not": "csv"}')
    assert stored_files(platform) == [] and platform.list_datasets() == []


def test_name_rules(platform, sample_csv):
    for bad in ("../etc", "/abs", "a/b", "naïve", "x" * 64, "-lead", ""):
        with pytest.raises(ValidationError, match="naming rule"):
            platform.upload_dataset(bad, sample_csv)
    assert stored_files(platform) == []


def test_test_fraction_out_of_range(platform, sample_csv):
    with pytest.raises(ValidationError, match="between 0.05 and 0.5"):
        platform.upload_dataset("frac", sample_csv, test_size=0.9)


def test_two_sessions_racing_for_one_name_get_one_success(platform, sample_csv):
    results: list[object] = []
    barrier = threading.Barrier(2)

    def upload():
        session = churn_core.connect()
        barrier.wait()
        try:
            results.append(session.upload_dataset("race", sample_csv))
        except ConflictError as exc:
            results.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, ConflictError)]
    assert len(results) == 2 and len(errors) == 1 and "already exists" in str(errors[0])
    assert len(stored_files(platform)) == 4


def test_delete_removes_files_and_record(platform, sample_csv):
    platform.upload_dataset("gone", sample_csv)
    platform.delete_dataset("gone")
    assert stored_files(platform) == [] and platform.list_datasets() == []
    with pytest.raises(churn_core.NotFoundError, match="No dataset named 'gone'"):
        platform.get_dataset("gone")


def test_sample_loads_with_its_source(platform):
    ds = platform.load_sample("sample-telecom")
    assert ds.source == "synthetic sample" and 0.1 < ds.churn_rate < 0.2
