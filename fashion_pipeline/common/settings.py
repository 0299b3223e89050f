"""Which settings a run gets when nobody writes config: the thesis's or the demo's.

Every asset's config class holds the thesis's settings as its defaults (300 pins a board, 50,000
detector iterations). Each stage also has a ``DEMO_RUN_CONFIG``: the small settings ``make demo``
runs with. ``FASHION_PIPELINE_SETTINGS`` picks which of the two a run launched without config gets
(a click on **Materialize** in the UI, a backfill, a schedule or automation run):

    thesis  the config classes' defaults (the default: the thesis, a GPU, real data)
    demo    the same schema with the demo's values as its defaults (``make dev`` sets this)

Either way the Launchpad still shows every field and takes any value: only the defaults change.
The jobs built by ``settings_jobs`` carry each profile's values as explicit run config, so both are
launchable from the UI whatever the profile.

Usage: ``python -m fashion_pipeline.common.settings [demo|thesis]`` prints a profile's run config.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from typing import Iterable, Mapping

import dagster as dg

SETTINGS_ENV_VAR = "FASHION_PIPELINE_SETTINGS"
PROFILES = ("thesis", "demo")
JOB_DESCRIPTIONS = {
    "thesis": "The thesis's settings (the config classes' defaults: full boards, 50,000 detector iterations, "
              "full-size GANs); meant for a GPU and real data.",
    "demo": "The settings `make demo` runs with (each stage's DEMO_RUN_CONFIG: 24 pins a board, a 200-iteration "
            "detector, quarter-width GANs): minutes on a CPU.",
}
# A job holds assets of one partitions definition (Dagster refuses a mix), so each profile gets
# one job per partitioning, named after what its partitions are.
PARTITIONING_NAMES = {"pinterest_images": "brand", "fashion_detector": "backbone", "dcgan_training_set": "variant",
                      "dcgan": "variant_seed", "pattern_patches": "pattern"}


class SettingsError(ValueError):
    """An unknown settings profile, or demo settings that name a field an asset does not have."""


def profile() -> str:
    value = os.environ.get(SETTINGS_ENV_VAR, "").strip() or "thesis"
    if value not in PROFILES:
        raise SettingsError(f"{SETTINGS_ENV_VAR}={value!r}: expected one of {', '.join(PROFILES)}")
    return value


def merge_demo_run_config(modules: Iterable) -> dict:
    """Every stage module's ``DEMO_RUN_CONFIG``, merged into one run config."""
    merged: dict = {"ops": {}, "resources": {}}
    for module in modules:
        for section, entries in getattr(module, "DEMO_RUN_CONFIG", {}).items():
            merged.setdefault(section, {}).update(entries)
    return merged


def _config_fields(assets_def: dg.AssetsDefinition) -> dict | None:
    schema = assets_def.op.config_schema
    config_type = schema.config_type if schema is not None else None
    return getattr(config_type, "fields", None)


def thesis_op_config(assets_def: dg.AssetsDefinition) -> dict:
    """The defaults of an asset's config schema: the thesis's settings, as explicit values."""
    fields = _config_fields(assets_def) or {}
    return {name: field.default_value for name, field in fields.items() if field.default_provided}


def _demo_op_config(assets_def: dg.AssetsDefinition, demo_run_config: Mapping) -> dict:
    return dict(demo_run_config.get("ops", {}).get(assets_def.op.name, {}).get("config", {}))


def with_config_defaults(assets_def: dg.AssetsDefinition, values: Mapping) -> dg.AssetsDefinition:
    """The same asset, its config schema's defaults replaced by ``values`` (each field stays optional).

    Dagster has no public hook for an asset's default config, so the op is rebuilt with a copy of its
    schema (``OpDefinition.with_replaced_properties``, what ``configured`` uses) and the asset around it.
    """
    if not values:
        return assets_def
    from dagster._config import Field, Shape
    from dagster._core.definitions.definition_config_schema import convert_user_facing_definition_config_schema

    fields = _config_fields(assets_def)
    unknown = sorted(set(values) - set(fields or {}))
    if unknown:
        raise SettingsError(f"demo settings for {assets_def.op.name!r} name fields its config does not have: {unknown}")
    replaced = {
        name: Field(field.config_type, default_value=values[name], is_required=False, description=field.description)
        if name in values else field
        for name, field in fields.items()
    }
    schema = convert_user_facing_definition_config_schema(Shape(replaced, description=assets_def.op.config_schema.description))
    op = assets_def.op.with_replaced_properties(name=assets_def.op.name, config_schema=schema)
    return dg.AssetsDefinition.dagster_internal_init(**{**assets_def.get_attributes_dict(), "node_def": op})


def apply_profile(assets: Iterable, demo_run_config: Mapping, name: str | None = None) -> list:
    """The assets with the profile's defaults: unchanged for ``thesis``, the demo's values for ``demo``."""
    name = name or profile()
    if name == "thesis":
        return list(assets)
    return [with_config_defaults(a, _demo_op_config(a, demo_run_config)) if isinstance(a, dg.AssetsDefinition) else a
            for a in assets]


def profile_run_config(assets: Iterable[dg.AssetsDefinition], demo_run_config: Mapping, name: str) -> dict:
    """Explicit run config giving these (thesis-default) assets the profile's settings."""
    ops = {}
    for assets_def in assets:
        values = thesis_op_config(assets_def)
        if name == "demo":
            values.update(_demo_op_config(assets_def, demo_run_config))
        if values:
            ops[assets_def.op.name] = {"config": values}
    return {"ops": ops}


def _by_partitioning(assets: Iterable[dg.AssetsDefinition]) -> dict[str, list[dg.AssetsDefinition]]:
    groups: dict = defaultdict(list)
    for assets_def in assets:
        groups[assets_def.partitions_def].append(assets_def)
    named = {}
    for partitions_def, members in groups.items():
        first = members[0].key.to_user_string()
        label = "chain" if partitions_def is None else PARTITIONING_NAMES.get(first, first)
        named[label] = members
    return named


def settings_jobs(thesis_assets: Iterable, demo_run_config: Mapping) -> list:
    """``<profile>_<partitioning>`` asset jobs (``demo_brand``, ``thesis_chain``, ...) with the profile's run config.

    ``thesis_assets`` are the assets as the stages define them (their defaults are the thesis's).
    """
    assets = [a for a in thesis_assets if isinstance(a, dg.AssetsDefinition) and a.is_executable]
    jobs = []
    for label, members in sorted(_by_partitioning(assets).items()):
        names = ", ".join(sorted(m.key.to_user_string() for m in members))
        for name in PROFILES:
            jobs.append(dg.define_asset_job(
                f"{name}_{label}", selection=[m.key for m in members],
                config=profile_run_config(members, demo_run_config, name),
                description=f"{JOB_DESCRIPTIONS[name]} Assets: {names}.",
                tags={"fashion_pipeline/settings": name},
            ))
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", nargs="?", choices=PROFILES, default=None, help=f"default: ${SETTINGS_ENV_VAR} or thesis")
    args = parser.parse_args(argv)
    from fashion_pipeline import definitions

    assets = [a for a in definitions.STAGE_ASSETS if isinstance(a, dg.AssetsDefinition)]
    print(json.dumps(profile_run_config(assets, definitions.DEMO_RUN_CONFIG, args.profile or profile()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
