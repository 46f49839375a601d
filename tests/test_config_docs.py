"""Every config key is findable: ``--show-config`` prints the resolved config with each key's
docstring, type and default before any work, the generated reference page lists every key
of every config, and DAgger's options are its config's fields."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from pipeline.algorithms.dagger_config import DaggerConfig
from pipeline.cli import main
from pipeline.cli.config_reference import PAGE, reference
from pipeline.core.config_docs import commented_yaml, field_doc
from pipeline.stages.motion.config import MotionFitConfig
from pipeline.training.config import TrainConfig, config_to_dict, load_config
from pipeline.training.recipes import recipe_for

ROOT = Path(__file__).resolve().parents[1]
WALK = "sim/HumanoidWalk-v0"


def dotted_keys(cls: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key of ``cls`` walked here independently of the code under test: nested models
    and every member of a union of models."""
    keys = set()
    for name, field in cls.model_fields.items():
        if field.exclude:
            continue
        key = prefix + name
        keys.add(key)
        annotation = field.annotation
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        members = typing.get_args(annotation) or (annotation,)
        for member in members:
            if isinstance(member, type) and issubclass(member, BaseModel):
                keys |= dotted_keys(member, key + ".")
    return keys


def test_the_reference_page_is_generated_from_the_configs():
    page = (ROOT / PAGE).read_text()
    assert page == reference(), "run: python -m pipeline.cli.config_reference"


@pytest.mark.parametrize("cls", [TrainConfig, DaggerConfig, MotionFitConfig])
def test_the_reference_lists_every_key_with_its_docstring(cls):
    page = reference()
    keys = dotted_keys(cls)
    assert len(keys) > 10
    for key in keys:
        assert f"| `{key}` |" in page, key
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines()}
    # A key's row carries its own docstring (the first one of that key in the page).
    epochs = TrainConfig.model_fields["training"].annotation.model_fields["epochs"]
    assert field_doc(epochs) in rows["training.epochs"]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_show_config_prints_the_resolved_recipe_with_docstrings_and_runs_nothing(
    walk_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "train", "--data", str(walk_data), "--show-config",
                          "--seed", "3", "training.epochs=7")  # fmt: skip
    assert code == 0, err
    shown = tmp_path / "shown.yaml"
    shown.write_text(out)
    expected = load_config(None, [*recipe_for(WALK), "training.epochs=7", "seed=3"])
    # The printed YAML is the config itself: recipe, override and option, as a file.
    assert config_to_dict(load_config(shown)) == config_to_dict(expected)
    assert yaml.safe_load(out)["model"]["hidden_sizes"] == [512, 512]
    # Every leaf key's docstring is there, as comments.
    comments = " ".join(line.strip().lstrip("# ") for line in out.splitlines()
                        if line.strip().startswith("#"))  # fmt: skip
    text = " ".join(comments.split())
    for doc in (field_doc(f) for f in TrainConfig.model_fields.values()):
        assert doc[:40] in text
    assert "default 0.2]" in text  # val_fraction's typed default beside the recipe's 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shown.yaml"]  # no run, no store


def test_dagger_show_config_prints_both_configs_and_writes_nothing(walk_data, tmp_path,
                                                                   capsys):  # fmt: skip
    out_dir = tmp_path / "dagger"
    code, out, err = _cli(capsys, "dagger", "--init-data", str(walk_data), "--out",
                          str(out_dir), "--show-config", "--iterations", "2",
                          "--lead-share", "0.5", "training.epochs=3")  # fmt: skip
    assert code == 0, err
    dagger_doc, train_doc = list(yaml.safe_load_all(out))
    assert dagger_doc == DaggerConfig(iterations=2, lead_share=0.5).model_dump(mode="json")
    assert train_doc["training"]["epochs"] == 3
    assert train_doc["data"]["batch_size"] == 64  # the walk recipe
    assert field_doc(DaggerConfig.model_fields["lead_share"])[:40] in " ".join(out.split())
    assert not out_dir.exists()


def test_dagger_options_are_its_config_fields_with_their_defaults():
    import typer.main

    from pipeline.cli.app import app

    command = typer.main.get_command(app).commands["dagger"]  # type: ignore[attr-defined]
    options = {p.name: p for p in command.params}
    for name, field in DaggerConfig.model_fields.items():
        if field.exclude:
            assert name not in options or name == "backend"
            continue
        assert name in options, name
        assert options[name].default == field.default, name
        assert " ".join(field_doc(field).replace("`", "").split())[:30] in options[name].help


def test_a_bad_dagger_option_is_one_line_naming_it(walk_data, tmp_path, capsys):
    code, _, err = _cli(capsys, "dagger", "--init-data", str(walk_data), "--out",
                        str(tmp_path / "d"), "--lead-share", "0")  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and "--lead-share" in err, err


def test_commented_yaml_marks_type_bounds_and_default():
    text = commented_yaml(DaggerConfig(beta=0.25))
    lines = text.splitlines()
    at = lines.index("beta: 0.25")
    comment = " ".join(line.lstrip("# ") for line in lines[at - 2 : at])
    assert "float, in [0.0, 1.0]; default 0.5]" in comment


def test_motion_fit_show_config_prints_its_config_and_runs_nothing(tmp_path, monkeypatch,
                                                                   capsys):  # fmt: skip
    from pipeline.stages.motion.config import load_motion_config

    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "motion", "fit", "--show-config", "--skill", "jump",
                          "steps=10")  # fmt: skip
    assert code == 0, err
    (tmp_path / "shown.yaml").write_text(out)
    shown = load_motion_config(tmp_path / "shown.yaml", [])
    assert shown == load_motion_config(None, ["steps=10", "skill=jump"])
    assert field_doc(MotionFitConfig.model_fields["eval_points"])[:40] in " ".join(out.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shown.yaml"]


def test_train_show_config_refuses_a_missing_data_file(tmp_path, capsys):
    """The recipe depends on the data's env: a file that cannot be read is refused in one
    line, not answered with the typed defaults."""
    code, out, err = _cli(capsys, "train", "--data", str(tmp_path / "nope.h5"), "--show-config")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "nope.h5" in err, err
