import subprocess

import pytest

from gazelab.config import ConfigError, load_config
from tests.support import VENV_BIN


def test_defaults_load_with_reference_values():
    config = load_config(environ={})
    assert config.collection.image_size == 64
    assert config.collection.beta_a == 0.4 and config.collection.focus_edges is True
    assert config.collection.target_speed == 280
    assert config.training.error_grid == (16, 9)
    assert config.database_url.startswith("sqlite:////")  # relative path made absolute
    assert config.data_dir.is_absolute()


def test_environment_overrides_a_key():
    config = load_config(environ={"GAZELAB_COLLECTION_BETA_A": "0.7", "GAZELAB_SERVER_PORT": "8080"})
    assert config.collection.beta_a == 0.7
    assert config.server.port == 8080


@pytest.mark.parametrize("name,value,fragment", [
    ("GAZELAB_COLLECTION_BETA_A", "abc", "GAZELAB_COLLECTION_BETA_A = 'abc' is invalid; it must be a number"),
    ("GAZELAB_SERVER_PORT", "70000", "an integer from 1 to 65535"),
    ("GAZELAB_COLLECTION_FOCUS_EDGES", "maybe", "True or False"),
    ("GAZELAB_TRAINING_ERROR_GRID", "16by9", "COLSxROWS"),
    ("GAZELAB_COLLECTION_BETA_AA", "1", "names no config key"),
])
def test_invalid_values_are_named(name, value, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(environ={name: value})
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_gaze_ray_without_geometry_inputs_is_named():
    with pytest.raises(ConfigError, match="gaze_ray needs inputs = full_geometry, not full"):
        load_config(environ={"GAZELAB_TRAINING_ARCHITECTURE": "gaze_ray", "GAZELAB_TRAINING_INPUTS": "full"})
    assert load_config(environ={"GAZELAB_TRAINING_ARCHITECTURE": "gaze_ray",
                                "GAZELAB_TRAINING_INPUTS": "full_geometry"}).training.architecture == "gaze_ray"


def test_misspelled_key_in_file(tmp_path):
    text = open(load_config(environ={}).path).read().replace("beta_b =", "beta_bb =")
    (tmp_path / "c.ini").write_text(text)
    with pytest.raises(ConfigError, match=r"\[collection\] beta_bb is not a known key"):
        load_config(tmp_path / "c.ini", environ={})


def test_cli_exits_2_with_one_line(tmp_path):
    result = subprocess.run([str(VENV_BIN / "gazelab"), "routes"], capture_output=True, text=True,
                            env={"GAZELAB_TRAINING_EPOCHS": "-3", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "GAZELAB_TRAINING_EPOCHS = '-3' is invalid" in result.stderr
