"""The Dagster config classes and the plain modules' CLIs agree on every default.

The thesis's hyperparameters are the defaults in both places; a change to one must not leave the
other behind (a UI materialization and a ``python -m`` run would silently train different models).
"""
from fashion_pipeline.detector import train
from fashion_pipeline.detector.assets import DetectorTrainingConfig
from fashion_pipeline.gan import dcgan
from fashion_pipeline.gan.assets import DCGANConfig


def test_detector_config_defaults_match_the_training_cli():
    cli_defaults = vars(train.build_parser().parse_args(["--output-dir", "unused"]))
    config_defaults = DetectorTrainingConfig().model_dump()
    shared = set(config_defaults) & set(cli_defaults)
    assert len(shared) >= 30, "most hyperparameters should be both config and CLI flags"
    mismatched = {name: (config_defaults[name], cli_defaults[name]) for name in shared
                  if config_defaults[name] != cli_defaults[name]}
    assert not mismatched


def test_detector_config_keeps_the_thesis_recipe():
    config = DetectorTrainingConfig()
    assert (config.base_lr, config.weight_decay, config.max_iter) == (0.0025, 1e-4, 50_000)
    assert config.lr_steps == [20_000, 40_000] and config.gamma == 0.1


def test_dcgan_config_is_the_training_dataclass():
    plain = dcgan.TrainConfig()
    config = DCGANConfig()
    for name in ("nz", "ngf", "ndf", "lr", "beta1", "batch_size", "epochs"):
        assert getattr(config, name) == getattr(plain, name)
    assert (config.nz, config.lr, config.beta1, config.batch_size, config.epochs) == (100, 2e-4, 0.5, 128, 200)
