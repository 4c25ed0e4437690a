"""The typed schema of a training config: every value a user sets that shapes a run, with its type,
its range, and the choices it may take, each choice list imported from where the code defines it
(loss forms from :mod:`vaelab.vae.loss`, binarisation from :mod:`vaelab.data.choices`, data sets
from :mod:`vaelab.data.idx_files`); ``model.net``, an import path, is checked by importing it, and
``model.net_args`` against that class's signature (:func:`vaelab.config.validate.validate`).

Why pydantic rather than Hydra structured configs: the YAML files stay plain, commented files (a
structured config would move every default into Python), the schema checks the *resolved* values
(interpolations, environment variables) after composition, and a failed check names one key, which
:func:`check` turns into one ``error:`` line. Keys the schema does not list (targets, Lightning's
own trainer flags, logger settings) are left to the libraries that read them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from vaelab.data.choices import BINARIZE_MODES
from vaelab.data.idx_files import DATASETS
from vaelab.errors import UserError
from vaelab.vae.loss import KL_FORMS, RECON_FORMS

PositiveInt = Annotated[StrictInt, Field(ge=1)]
Number = StrictFloat | StrictInt


def _choices(values: tuple[str, ...] | dict[str, Any]) -> Any:
    return Literal[tuple(values)]  # Literal[("a", "b")] is Literal["a", "b"]


def rule(accepted: str, example: str) -> Any:
    """A field's explanation, used in the error line: what is accepted and an example override."""
    return Field(default=None, json_schema_extra={"accepted": accepted, "example": example})


class _Section(BaseModel):
    # only the listed keys are checked here; the rest belong to Hydra, Lightning or W&B
    model_config = ConfigDict(extra="allow", strict=True)


class ModelSchema(_Section):
    net: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")] | None = rule(
        "the import path of a GaussianVAE subclass", "model=vae_conv (or model.net=vaelab.vae.conv.ConvVAE)"
    )
    latent_dim: PositiveInt | None = rule("an integer >= 1", "model.latent_dim=2")
    # [] is a network without fully connected hidden layers (the MLP: linear maps; ConvVAE: conv features -> m, σ)
    hidden: list[PositiveInt] | None = rule("a list of integers >= 1", "model.hidden=[400]")
    # the network class's own keyword arguments, checked against its signature (vaelab.config.validate)
    net_args: dict[str, Any] | None = rule("a mapping of the network class's own arguments", "model.net_args.channels=[16,32]")
    kl: _choices(KL_FORMS) | None = rule(f"one of {', '.join(KL_FORMS)}", "model.kl=analytic")
    recon: _choices(RECON_FORMS) | None = rule(f"one of {', '.join(RECON_FORMS)}", "model.recon=bce")
    beta: Annotated[Number, Field(ge=0)] | None = rule("a number >= 0", "model.beta=1.0")
    kl_warmup_epochs: Annotated[StrictInt, Field(ge=0)] | None = rule("an integer >= 0", "model.kl_warmup_epochs=100")
    lr: Annotated[Number, Field(gt=0)] | None = rule("a number > 0", "model.lr=1e-3")
    log_scale_max: Annotated[Number, Field(gt=0, le=40)] | None = rule("a number in (0, 40]", "model.log_scale_max=10")


class DataSchema(_Section):
    dataset: _choices(DATASETS) | None = rule(f"one of {', '.join(DATASETS)}", "data=fashion_mnist")
    batch_size: PositiveInt | None = rule("an integer >= 1", "data.batch_size=128")
    eval_batch_size: PositiveInt | None = rule("an integer >= 1", "data.eval_batch_size=1000")
    val_size: PositiveInt | None = rule("an integer >= 1", "data.val_size=10000")
    steps_per_call: PositiveInt | None = rule("an integer >= 1", "data.steps_per_call=8")
    split_seed: StrictInt | None = rule("an integer", "data.split_seed=1234")
    binarize: _choices(BINARIZE_MODES) | None = rule(f"one of {', '.join(BINARIZE_MODES)}", "data.binarize=none")
    mirror: Annotated[str, Field(pattern=r"^(https?|file)://")] | None = rule(
        "null or a URL prefix (http://, https:// or file://) holding the four <file>.gz", "data.mirror=https://ossci-datasets.s3.amazonaws.com/mnist/"
    )


class TrainerSchema(_Section):
    max_epochs: PositiveInt | None = rule("an integer >= 1", "trainer.max_epochs=20")


class RunSchema(_Section):
    # numpy seeds must be in [0, 2**32): a negative seed would fail deep inside Lightning
    seed: Annotated[StrictInt, Field(ge=0, lt=2**32)] | None = rule("an integer in [0, 2**32)", "seed=0")
    resume: StrictBool | None = rule("true or false", "resume=true")
    print_config: StrictBool | None = rule("true or false", "print_config=false")
    threads: PositiveInt | None = rule("null or an integer >= 1", "threads=1")
    model: ModelSchema | None = None
    data: DataSchema | None = None
    trainer: TrainerSchema | None = None


SECTIONS: dict[str, type[_Section]] = {"model": ModelSchema, "data": DataSchema, "trainer": TrainerSchema}
SPLITS: tuple[str, ...] = ("test", "val")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


class EvaluateSchema(_Section):
    """``vaelab.evaluate``'s own keys (its ``data.*`` are the training ones, checked by the data module)."""

    k: PositiveInt | None = rule("an integer >= 1", "k=100")
    chunk: PositiveInt | None = rule("an integer >= 1", "chunk=100")
    batch_size: PositiveInt | None = rule("an integer >= 1", "batch_size=100")
    split: _choices(SPLITS) | None = rule(f"one of {', '.join(SPLITS)}", "split=test")
    device: _choices(DEVICES) | None = rule(f"one of {', '.join(DEVICES)}", "device=cpu")
    threads: PositiveInt | None = rule("null or an integer >= 1", "threads=1")


def _values(cfg: DictConfig, schema: type[_Section]) -> dict[str, Any]:
    """The schema's keys that ``cfg`` sets, resolved one at a time, so that an unresolvable value
    is reported under its own key."""
    out: dict[str, Any] = {}
    sections = SECTIONS if schema is RunSchema else {}
    for name in schema.model_fields:
        keys = [f"{name}.{k}" for k in sections[name].model_fields] if name in sections else [name]
        for key in keys:
            if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
                continue
            try:
                value = OmegaConf.select(cfg, key)
            except Exception as exc:  # any interpolation error: reported as one line for this key
                raise UserError(f"{key}: cannot resolve its value ({str(exc).splitlines()[0]})") from None
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value)
            section, _, field = key.partition(".")
            if field:
                out.setdefault(section, {})[field] = value
            else:
                out[section] = value
    return out


def check(cfg: DictConfig, schema: type[_Section] | None = None) -> None:
    """Raise :class:`UserError` naming the first key whose value ``schema`` (default: the training
    run's, :class:`RunSchema`) refuses."""
    schema = schema or RunSchema
    values = _values(cfg, schema)
    try:
        schema.model_validate(values)
    except ValidationError as exc:
        loc = [p for p in exc.errors()[0]["loc"] if isinstance(p, str)]
        # pydantic adds the matched type to the path of a union (e.g. "int"): keep only our keys
        key_parts = [loc[0]] + ([loc[1]] if loc[0] in SECTIONS and len(loc) > 1 else [])
        section = SECTIONS.get(key_parts[0], schema) if len(key_parts) > 1 else schema
        info = section.model_fields[key_parts[-1]].json_schema_extra or {}
        key = ".".join(key_parts)
        value = values[key_parts[0]][key_parts[1]] if len(key_parts) > 1 else values[key_parts[0]]
        raise UserError(f"{key}={value!r} is invalid: expected {info.get('accepted')} (e.g. {info.get('example')})") from None
