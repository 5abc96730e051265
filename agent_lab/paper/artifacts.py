"""The paper's 8 tables and 27 figures as specs: titles, settings, claims, runs, renderers.

Titles and settings follow the captions and the text around them (paper
``000_473d291ef5098bb2.txt``); claims are phrased so that our runs can hold or refute them, each
with the check that decides it (:mod:`agent_lab.paper.claims`). ``arms(scale)`` gives the runs at
each scale, written at the paper's settings with the builders of :mod:`agent_lab.paper.plan`.

What the cpu scale runs: standard training of VGG models on the CIFAR-10 subset. Adversarial
training (≈ 11× the cost of an epoch), wide ResNets and other data sets are not run there, and
claims that need them are "not testable" at that scale. Where an artifact is about something
else (the diagnostics of Fig. 1/2/26 and Table 7, the optimizers of Table 2 and Fig. 25, the γ of
Fig. 23), the cpu scale runs it on a VGG-16 / CIFAR-10 / standard-training stand-in, which its
``scale_notes`` state.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .claims import Claim, all_of, better, co_move, collapses, faster, fewer_epochs, similar, trend, variance_below_sgd
from .plan import BSR_BUDGETS, OBJECTIVE_NAMES, Arm, bsr, facets, itop, rigl
from .spec import ArtifactSpec

BSR_EPOCHS = "accuracy at epoch budgets 20, 40, 70, 90, 140, 200 (mean (std) over seeds, as the paper prints)"
UNSTATED_SEEDS = "The paper does not state its seeds or their number: 3 seeds here."
SPARSITIES = (0.9, 0.99)
MODEL_NAMES = {"vgg16": "VGG-16", "wrn-28-4": "WRN-28-4", "vgg-c": "VGG-C", "resnet34": "ResNet-34",
               "resnet18": "ResNet-18", "resnet50": "ResNet-50"}
IMAGENET_ENV = "IMAGENET_ROOT"  # the ImageNet image folder of Fig. 15 (default data/imagenet)
CPU_SCOPE = "cpu scale: standard training of VGG models on CIFAR-10 only; the other rows are not run there."
CPU_STAND_IN = "cpu scale: VGG-16 on the CIFAR-10 subset stands in for {what}."


def _cpu(scale) -> bool:
    return scale.name == "cpu"


def _runs_at(scale, *, model: str, dataset: str = "cifar10", adversarial: str = "none") -> bool:
    """Whether a row of this setting runs at ``scale`` (the cpu scope above; every row elsewhere)."""
    return not _cpu(scale) or (model.startswith("vgg") and dataset == "cifar10" and adversarial == "none")


def _stand_in(scale, model: str, dataset: str) -> tuple[str, str]:
    return ("vgg16", "cifar10") if _cpu(scale) else (model, dataset)


def _bsr_arms(scale, methods, *, models=("vgg16",), datasets=("cifar10",), objectives=("none",),
              sparsities=SPARSITIES, **changes: Any) -> tuple[Arm, ...]:
    arms = []
    for dataset in datasets:
        for model in models:
            for objective in objectives:
                if not _runs_at(scale, model=model, dataset=dataset, adversarial=objective):
                    continue
                for sparsity in sparsities:
                    for label, optimizer, row, extra in methods:
                        arms.append(Arm(label, bsr(optimizer, model=model, dataset=dataset, sparsity=sparsity,
                                                   adversarial=objective, **{**changes, **extra}),
                                        facets(model=MODEL_NAMES[model], dataset=dataset,
                                               objective=OBJECTIVE_NAMES[objective], sparsity=sparsity),
                                        paper_row=row))
    return tuple(arms)


BSR_PAIR = (("BSR-Net", "sgd", "BSR-Net", {}), ("A-BSR-Net", "agent", "A-BSR-Net (ours)", {}))
ABLATION = (("A-BSR-Net", "agent", "A-BSR-Net (ours)", {}), ("Fix c", "fixed-c", "Fix c", {}),
            ("No γ", "no-gamma", "No gamma", {}))
ALL_OBJECTIVES = ("at", "trades", "none")
ADVERSARIAL = {"objective": ["AT", "TRADES"]}
STANDARD = {"objective": "standard"}


def _budget_column(facet: dict, budget: int) -> str:
    return f"{facet['objective']} | {facet['sparsity']:.0%} | epoch {budget}"


def _model_column(facet: dict, budget: int) -> str:
    return f"{facet['sparsity']:.0%} | {facet['model']}"


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------

def _table1(scale):
    return _bsr_arms(scale, BSR_PAIR, objectives=ALL_OBJECTIVES)


def _table2(scale):
    arms = []
    for dataset in (("cifar10",) if scale.name != "paper" else ("cifar10", "cifar100")):
        for sparsity in (0.0, 0.9, 0.99):
            model, data = _stand_in(scale, "resnet50", dataset)
            for label, optimizer in (("RigL", "sgd"), ("A-RigL", "agent")):
                arms.append(Arm(label, rigl(optimizer, model=model, dataset=data, sparsity=sparsity),
                                facets(dataset=dataset, sparsity=sparsity), paper_row=None))
    return tuple(arms)


def _table3(scale):
    return _bsr_arms(scale, BSR_PAIR, models=("vgg16", "wrn-28-4"), datasets=("svhn",), objectives=("trades",))


def _itop_arms(scale, methods, *, models=("vgg-c",), pipelines=("set-itop",), sparsity=0.99):
    arms = []
    for model in models:
        if not _runs_at(scale, model=model):
            continue
        for pipeline in pipelines:
            for label, optimizer, row, extra in methods:
                arms.append(Arm(label, itop(optimizer, model=model, pipeline=pipeline, sparsity=sparsity, **extra),
                                facets(model=MODEL_NAMES[model], pipeline=pipeline), paper_row=row))
    return tuple(arms)


def _table4(scale):
    return _itop_arms(scale, (("MVR", "mvr", "MVR", {}), ("AGENT+MVR", "agent-mvr", "AGENT+MVR", {})))


def _table6(scale):
    arms = list(_bsr_arms(scale, BSR_PAIR, models=("vgg16", "wrn-28-4"), datasets=("svhn",),
                          objectives=("trades",)))
    for model in ("vgg16", "wrn-28-4"):
        if not _runs_at(scale, model=model, dataset="svhn", adversarial="trades"):
            continue
        for sparsity in SPARSITIES:
            # Final accuracy only: evaluated (PGD-50 x 10, whole test set) at the end of each phase.
            dense = bsr("sgd", model=model, dataset="svhn", sparsity=0.0, adversarial="trades", budgets=(),
                        eval_every=200)
            arms.append(Arm("HYDRA", dense,
                            facets(model=MODEL_NAMES[model], dataset="svhn", objective="TRADES", sparsity=sparsity),
                            paper_row="HYDRA", driver="hydra"))
    return tuple(arms)


def _sweep_arms(scale):
    arms = []
    model, dataset = _stand_in(scale, "resnet50", "cifar100")
    sparsities = (0.0, 0.5, 0.9) if scale.name == "smoke" else (0.0, 0.5, 0.8, 0.9, 0.95)
    for pipeline in ("rigl", "set"):
        for sparsity in sparsities:
            arms.append(Arm("SGD", rigl("sgd", model=model, dataset=dataset, pipeline=pipeline, sparsity=sparsity),
                            facets(pipeline=pipeline, sparsity=sparsity)))
    return tuple(arms)


def _table8(scale):
    return _itop_arms(scale, (("Reduce LR", "reduce-lr", "Reduce LR", {}), ("AGENT", "agent", "AGENT (ours)", {})),
                      models=("vgg-c", "resnet34"))


def _table8_column(facet: dict, budget: int) -> str:
    return f"{facet['model']} | epoch {budget}"


# ------------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------------

def _fig26_arms(scale):
    model, dataset = _stand_in(scale, "resnet50", "cifar10")
    return tuple(Arm("A-RigL", rigl("agent", model=model, dataset=dataset, sparsity=s, diagnostics="correlation"),
                     facets(sparsity=s)) for s in SPARSITIES)


def _fig2_arms(scale):
    return _fig26_arms(scale)[:1]  # the 90 % A-RigL run of Fig. 26


def _fig3(scale):
    return _itop_arms(scale, (("SGD", "sgd", None, {}), ("AGENT", "agent", None, {})),
                      pipelines=("rigl-itop", "set-itop"))


def _fig4(scale):
    return _bsr_arms(scale, BSR_PAIR, models=("vgg16", "wrn-28-4"), objectives=("none", "at"), sparsities=(0.99,))


def _fig5(scale):
    return _itop_arms(scale, (("SGD", "sgd", None, {}), ("SVRG", "svrg", None, {}), ("AGENT", "agent", None, {})),
                      models=("vgg-c", "resnet34"), pipelines=("rigl-itop", "set-itop"))


def _fig6(scale):
    return _itop_arms(scale, (("Adam", "adam", None, {}), ("AGENT", "agent", None, {})),
                      pipelines=("rigl-itop", "set-itop"))


def _bsr_setting(model: str, dataset: str, objective: str):
    def arms(scale):
        return _bsr_arms(scale, BSR_PAIR, models=(model,), datasets=(dataset,), objectives=(objective,))
    return arms


def _fig13(scale):
    return _bsr_arms(scale, BSR_PAIR, models=("vgg16", "wrn-28-4"), datasets=("cifar100", "svhn"), sparsities=(0.99,))


def _fig14(scale):
    return _bsr_arms(scale, BSR_PAIR, objectives=("none", "at"), sparsities=(0.0,))


def _fig15(scale):
    if _cpu(scale):
        return ()
    root = os.environ.get(IMAGENET_ENV, "data/imagenet")
    if scale.name == "paper" and not Path(root).is_dir():
        return ()  # the spec only, until ImageNet is there
    # At the smoke scale the data set is replaced anyway (cifar10-mini); ImageNet is not needed.
    data = {"dataset": "imagenet", "data_root": root} if scale.name == "paper" else {"dataset": "cifar10"}
    return tuple(Arm(label, itop(optimizer, model="resnet50", **data, pipeline="rigl-itop",
                                 sparsity=s, epochs=100, batch_size=64), facets(sparsity=s))
                 for s in (0.8, 0.9) for label, optimizer in (("RigL-ITOP", "sgd"), ("A-RigL-ITOP", "agent")))


def _fig16(scale):
    return _bsr_arms(scale, BSR_PAIR, models=("wrn-28-4", "resnet18"), datasets=("cifar100",), sparsities=(0.99,))


def _fig23(scale):
    objective = "none" if _cpu(scale) else "at"
    arms = []
    for gamma in (0.5, 0.1, 0.01):
        config = bsr("agent", sparsity=0.99, adversarial=objective, gamma=gamma)
        arms.append(Arm(f"γ = {gamma:g}", config, facets(objective=OBJECTIVE_NAMES[objective], sparsity=0.99)))
    return tuple(arms)


def _fig24(scale):
    return _bsr_arms(scale, (*BSR_PAIR, ("SVRG", "svrg", None, {})), objectives=("at",), sparsities=(0.99,))


def _fig25(scale):
    model, dataset = _stand_in(scale, "resnet50", "cifar100")
    return tuple(Arm(label, rigl(optimizer, model=model, dataset=dataset, sparsity=0.9), facets(sparsity=0.9))
                 for label, optimizer in (("RigL", "sgd"), ("A-RigL", "agent"), ("SVRG", "svrg")))


def _fig27(scale):
    return _itop_arms(scale, (("RigL-ITOP", "agent", None, {}),
                              ("RigL-ITOP-G", "agent", None, {"growth": "corrected-gradient"})),
                      models=("vgg-c", "resnet34"), pipelines=("rigl-itop",))


BSR_FACETS = ("model", "dataset", "objective", "sparsity")
ITOP_FACETS = ("model", "pipeline")
A_FASTER = Claim("A-BSR-Net's accuracy curve lies above BSR-Net's (it reaches each accuracy in fewer epochs).",
                 faster("A-BSR-Net", "BSR-Net"))


def _bsr_curves(n: int, model: str, dataset: str, objective: str) -> ArtifactSpec:
    setting = f"{MODEL_NAMES[model]}, {dataset.upper() if dataset == 'svhn' else dataset.replace('cifar', 'CIFAR-')}"
    objective_name = OBJECTIVE_NAMES[objective]
    return ArtifactSpec(
        f"fig{n}", f"BSR-Net vs A-BSR-Net: accuracy given the number of epochs ({setting}, {objective_name})",
        "App. B.1", f"BSR-Net pipeline, 90% and 99% sparsity, {setting}, {objective_name}",
        (Claim(f"A-BSR-Net reaches each accuracy level in fewer epochs than BSR-Net ({setting}, {objective_name}).",
               faster("A-BSR-Net", "BSR-Net")),),
        UNSTATED_SEEDS + " The appendix also draws 'BSR-Net (ori)' with the original BSR-Net schedule, which "
        "the paper does not give: not drawn here.", ("bsr", "curves"),
        arms=_bsr_setting(model, dataset, objective), facets=BSR_FACETS, renderer="curves",
        budgets=BSR_BUDGETS, scale_notes=(("cpu", CPU_SCOPE),))


def _hours(n: int, model_or_arms, dataset: str = "cifar10", objective: str = "none", *,
           setting: str, sparsities: str = "90% and 99%") -> ArtifactSpec:
    arms = model_or_arms if callable(model_or_arms) else _bsr_setting(model_or_arms, dataset, objective)
    objective_name = OBJECTIVE_NAMES[objective]
    return ArtifactSpec(
        f"fig{n}", f"Hours to reach a given accuracy ({setting}, {objective_name})", "App. B.2",
        f"BSR-Net pipeline, {sparsities} sparsity, {setting}, {objective_name}",
        (Claim(f"AGENT needs less wall-clock time than its baseline to reach each accuracy ({setting}, "
               f"{objective_name}), its extra full-gradient passes included.",
               fewer_epochs("A-BSR-Net", "BSR-Net", x="wall_time")),
         Claim("AGENT needs fewer forward-backward passes than its baseline to reach each accuracy.",
               fewer_epochs("A-BSR-Net", "BSR-Net", x="fwd_bwd"))),
        "Hours depend on the machine: compared here on one machine, and also in fwd_bwd passes (the second "
        "claim is ours, the honest compute count). " + UNSTATED_SEEDS,
        ("wall-clock",), arms=arms, facets=BSR_FACETS, renderer="hours_to", scale_notes=(("cpu", CPU_SCOPE),))


ARTIFACT_LIST: tuple[ArtifactSpec, ...] = (
    ArtifactSpec(
        "table1", "Testing accuracy of BSR-Net-based models (clean/robust)", "§6.2, Table 1",
        "VGG-16, CIFAR-10, BSR-Net vs A-BSR-Net, 90% and 99% sparsity, AT, TRADES and standard training; "
        + BSR_EPOCHS,
        (Claim("For the same number of epochs, A-BSR-Net's clean accuracy is higher than BSR-Net's in almost all "
               "cells.", better("A-BSR-Net", "BSR-Net")),
         Claim("A-BSR-Net's robust accuracy (PGD-50, 10 restarts) is higher than BSR-Net's at later budgets under AT "
               "and TRADES.", better("A-BSR-Net", "BSR-Net", metric="robust_acc", where=ADVERSARIAL,
                                     budgets=(90, 140, 200)))),
        "The bracketed number after each clean accuracy is read as the std over seeds. " + UNSTATED_SEEDS,
        ("bsr", "adversarial"), arms=_table1, facets=BSR_FACETS, renderer="budget_table", budgets=BSR_BUDGETS,
        paper_column=_budget_column, scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "table2", "Final accuracy of RigL-based models at 0% (dense), 90% and 99% sparsity", "§6.2, Table 2",
        "ResNet-50, CIFAR-10 and CIFAR-100, RigL vs A-RigL, standard training",
        (Claim("A-RigL's final accuracy is at least RigL's at every sparsity and data set.",
               better("A-RigL", "RigL", final=True, quantifier="all")),),
        "Most cells were lost in the text extraction; the four surviving values cannot be placed. " + UNSTATED_SEEDS,
        ("rigl",), arms=_table2, facets=("dataset", "sparsity"), renderer="final_table", budgets=(250,),
        paper_epochs=250, scale_notes=(("cpu", CPU_STAND_IN.format(what="ResNet-50; CIFAR-100 is not run")),)),
    ArtifactSpec(
        "table3", "Final accuracy of BSR-Net-based models on SVHN with TRADES", "§6.2, Table 3",
        "VGG-16 and WRN-28-4, SVHN, BSR-Net vs A-BSR-Net, 90% and 99% sparsity, TRADES",
        (Claim("A-BSR-Net's final accuracy is at least BSR-Net's.",
               better("A-BSR-Net", "BSR-Net", final=True, quantifier="all")),),
        "The caption does not say whether the accuracy is clean or robust; read as clean (it equals Table 6's "
        "clean BSR-Net values). " + UNSTATED_SEEDS, ("bsr", "adversarial"),
        arms=_table3, facets=BSR_FACETS, renderer="final_table", budgets=(200,), paper_column=_model_column,
        paper_metric_names=(("clean_acc", "acc"),), scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "table4", "Testing accuracy of MVR vs AGENT+MVR", "§6.5, Table 4",
        "VGG-C, CIFAR-10, SET-ITOP, 99% sparsity, standard training, epochs 20, 40, 70, 90, 140, 200",
        (Claim("AGENT+MVR's accuracy is higher than MVR's at most epoch budgets.", better("AGENT+MVR", "MVR")),),
        "MVR's momentum parameter a is not stated: 0.1 here. The table stops at epoch 200 of ITOP's 250. "
        + UNSTATED_SEEDS, ("itop", "mvr"),
        arms=_table4, facets=ITOP_FACETS, renderer="budget_table", budgets=BSR_BUDGETS, paper_epochs=250,
        paper_column=lambda facet, budget: f"epoch {budget}", paper_metric_names=(("clean_acc", "acc"),)),
    ArtifactSpec(
        "table5", "Ablation: fixed c and no γ against AGENT (clean/robust)", "§6.6, Table 5",
        "VGG-16, CIFAR-10, BSR-Net, 90% and 99% sparsity, AT, TRADES and standard training; " + BSR_EPOCHS,
        (Claim("Under AT and TRADES, 'No γ' learns poorly and has the lowest accuracy.",
               all_of(better("A-BSR-Net", "No γ", where=ADVERSARIAL), better("Fix c", "No γ", where=ADVERSARIAL))),
         Claim("AGENT's accuracy is higher than 'Fixed c' and 'No γ' in almost all cells, especially at 99% sparsity.",
               all_of(better("A-BSR-Net", "Fix c"), better("A-BSR-Net", "No γ"))),
         Claim("Under standard training 'Fixed c' converges about as fast as AGENT (within 1 point at budgets 20 "
               "and 40), and AGENT's final accuracy is higher.",
               all_of(similar("A-BSR-Net", "Fix c", where=STANDARD, budgets=(20, 40)),
                      better("A-BSR-Net", "Fix c", where=STANDARD, final=True)))),
        "'Fixed c' uses c = 0.1. " + UNSTATED_SEEDS, ("bsr", "ablation"),
        arms=lambda scale: _bsr_arms(scale, ABLATION, objectives=ALL_OBJECTIVES), facets=BSR_FACETS,
        renderer="budget_table", budgets=BSR_BUDGETS, paper_column=_budget_column, scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "table6", "BSR-Net, HYDRA and A-BSR-Net on SVHN with TRADES (clean/robust)", "App. B, Table 6",
        "VGG-16 and WRN-28-4, SVHN, 90% and 99% sparsity, TRADES, 200 epochs, PGD-50 × 10 restarts",
        (Claim("A-BSR-Net's clean and robust accuracies are at least those of BSR-Net and HYDRA.",
               all_of(better("A-BSR-Net", "BSR-Net", final=True), better("A-BSR-Net", "HYDRA", final=True),
                      better("A-BSR-Net", "BSR-Net", final=True, metric="robust_acc"),
                      better("A-BSR-Net", "HYDRA", final=True, metric="robust_acc"))),),
        "The HYDRA and 'ours' columns were lost in the text extraction. HYDRA runs with its own phases "
        "(pre-train, prune, fine-tune; experiments.hydra) from the dense TRADES config. " + UNSTATED_SEEDS,
        ("bsr", "hydra", "adversarial"), arms=_table6, facets=BSR_FACETS, renderer="final_table", budgets=(200,),
        paper_column=_model_column, scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "table7", "Gradient correlation under weight perturbation against sparsity", "App. B.6, Table 7",
        "ResNet-50, CIFAR-100, RigL and SET at 0, 50, 80, 90, 95% sparsity; correlation of full gradients at "
        "w and w + N(0, 0.015²), 3 replicates",
        (Claim("The correlation decreases as sparsity increases, for RigL and for SET.", trend("grad_corr", "down")),),
        "Whether masked weights are perturbed is not stated: all weights by default, active-only as an option. "
        "One training seed per point (the paper's checkpoints); the error is over the 3 replicates.",
        ("diagnostics",), arms=_sweep_arms, facets=("pipeline", "sparsity"), renderer="sweep", paper_epochs=250,
        measures=("sweep",), sweep_what=("correlation",), seeds_at=(("cpu", 1), ("paper", 1)),
        scale_notes=(("cpu", CPU_STAND_IN.format(what="ResNet-50 on CIFAR-100")),)),
    ArtifactSpec(
        "table8", "AGENT against 'Reduce LR' (no γ, lr × 0.1)", "App. B.9, Table 8",
        "VGG-C and ResNet-34, SET-ITOP, standard training",
        (Claim("'Reduce LR' converges comparably early on (within 2 points at epoch 20) but reaches a lower final "
               "accuracy than AGENT.",
               all_of(similar("AGENT", "Reduce LR", tolerance=2.0, budgets=(20,)),
                      better("AGENT", "Reduce LR", final=True))),),
        "The data set and sparsity are not stated: CIFAR-10 and 99% (as the other ITOP results). " + UNSTATED_SEEDS,
        ("itop", "ablation"), arms=_table8, facets=ITOP_FACETS, renderer="budget_table",
        budgets=(20, 80, 130, 180, 240), paper_epochs=250, paper_column=_table8_column,
        paper_metric_names=(("clean_acc", "acc"),), scale_notes=(("cpu", "cpu scale: VGG-C only."),)),
    ArtifactSpec(
        "fig1", "Gradient variance and gradient correlation against sparsity", "§1, Figure 1",
        "RigL and SET at 0, 50, 80, 90, 95% sparsity (ResNet-50, CIFAR-100 as Table 7)",
        (Claim("Gradient variance grows with sparsity.", trend("grad_var", "up")),
         Claim("Gradient correlation drops with sparsity.", trend("grad_corr", "down"))),
        "The variance's batches and replicates are not stated: 20 minibatches, 3 replicates.", ("diagnostics",),
        arms=_sweep_arms, facets=("pipeline", "sparsity"), renderer="sweep", paper_epochs=250, measures=("sweep",),
        seeds_at=(("cpu", 1), ("paper", 1)),
        scale_notes=(("cpu", CPU_STAND_IN.format(what="ResNet-50 on CIFAR-100")),)),
    ArtifactSpec(
        "fig2", "Variance of the corrected gradient as a function of c", "§4, Figure 2",
        "Var[g − c·g_old + c·g̃] as a quadratic in c, with c*, a poor estimate ĉ and γĉ marked",
        (Claim("With γ = 0.1, γĉ gives a variance below SGD's (c = 0) even when ĉ alone gives a larger one.",
               variance_below_sgd()),),
        "An illustration in the paper; measured here on the 90% A-RigL run of Fig. 26 (its final checkpoint and "
        "last snapshot).", ("diagnostics",), arms=_fig2_arms, facets=("sparsity",), renderer="variance_curve",
        paper_epochs=250, measures=("variance_curve",), seeds_at=(("cpu", 1), ("paper", 1)),
        scale_notes=(("cpu", CPU_STAND_IN.format(what="ResNet-50")),)),
    ArtifactSpec(
        "fig3", "Testing accuracy of ITOP-based models at 99% sparsity", "§6.2, Figure 3",
        "CIFAR-10, 99% sparsity, RigL-ITOP and SET-ITOP with and without AGENT",
        (Claim("A-RigL-ITOP and A-SET-ITOP converge faster than RigL-ITOP and SET-ITOP.", faster("AGENT", "SGD")),),
        "The model is not stated in the caption: VGG-C (as Figs. 5 and 27). " + UNSTATED_SEEDS, ("itop", "curves"),
        arms=_fig3, facets=ITOP_FACETS, renderer="curves", paper_epochs=250),
    ArtifactSpec(
        "fig4", "Epochs needed to reach an accuracy at 99% sparsity", "§6.2, Figure 4",
        "VGG-16 and WRN-28-4, CIFAR-10, BSR-Net vs A-BSR-Net, standard and AT, 99% sparsity",
        (Claim("A-BSR-Net needs fewer epochs than BSR-Net to reach each accuracy.",
               fewer_epochs("A-BSR-Net", "BSR-Net")),), UNSTATED_SEEDS, ("bsr", "epochs-to"),
        arms=_fig4, facets=BSR_FACETS, renderer="epochs_to", scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "fig5", "SVRG against SGD and AGENT in ITOP-based models", "§6.3, Figure 5",
        "VGG-C and ResNet-34, CIFAR-10, RigL-ITOP and SET-ITOP, 99% sparsity",
        (Claim("SVRG slows training down compared to SGD.", faster("SGD", "SVRG")),
         Claim("AGENT accelerates training compared to SGD.", faster("AGENT", "SGD"))),
        UNSTATED_SEEDS, ("itop", "svrg", "curves"), arms=_fig5, facets=ITOP_FACETS, renderer="curves",
        paper_epochs=250, scale_notes=(("cpu", "cpu scale: VGG-C only."),)),
    ArtifactSpec(
        "fig6", "Adam against AGENT in ITOP-based models", "§6.4, Figure 6",
        "CIFAR-10, RigL-ITOP and SET-ITOP, 99% sparsity",
        (Claim("AGENT-based training converges faster than Adam-based training.", faster("AGENT", "Adam")),),
        "The model is not stated: VGG-C (as Fig. 5). Adam's lr is not stated: 1e-3. " + UNSTATED_SEEDS,
        ("itop", "adam", "curves"), arms=_fig6, facets=ITOP_FACETS, renderer="curves", paper_epochs=250),
    _bsr_curves(7, "vgg16", "cifar10", "none"),
    _bsr_curves(8, "vgg16", "cifar10", "at"),
    _bsr_curves(9, "wrn-28-4", "cifar10", "none"),
    _bsr_curves(10, "wrn-28-4", "cifar10", "at"),
    _bsr_curves(11, "vgg16", "svhn", "none"),
    _bsr_curves(12, "vgg16", "svhn", "trades"),
    ArtifactSpec(
        "fig13", "Training curves of BSR-Net-based models at 99% sparsity (CIFAR-100, SVHN)", "App. B.1, Figure 13",
        "VGG-16 and WRN-28-4 on CIFAR-100 and SVHN, 99% sparsity, standard training",
        (A_FASTER,), UNSTATED_SEEDS, ("bsr", "curves"), arms=_fig13, facets=BSR_FACETS, renderer="curves",
        scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "fig14", "Epochs to reach an accuracy for dense BSR-Net-based models", "App. B.1, Figure 14",
        "VGG-16, CIFAR-10, dense, standard and adversarial training",
        (Claim("AGENT also accelerates dense training (fewer epochs to each accuracy).",
               fewer_epochs("A-BSR-Net", "BSR-Net")),), UNSTATED_SEEDS, ("dense", "epochs-to"),
        arms=_fig14, facets=BSR_FACETS, renderer="epochs_to", scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "fig15", "Epochs to reach an accuracy for ITOP-based models on ImageNet", "App. B.1, Figure 15",
        "ResNet-50, ImageNet-2012, RigL-ITOP at 80% and 90% sparsity, standard training, 100 epochs, batch 64",
        (Claim("A-RigL-ITOP needs fewer epochs than RigL-ITOP to reach each accuracy at 80% sparsity.",
               fewer_epochs("A-RigL-ITOP", "RigL-ITOP", where={"sparsity": 0.8})),),
        "Needs ImageNet (RunConfig.data_root): not run at the cpu scale. " + UNSTATED_SEEDS, ("itop", "imagenet"),
        arms=_fig15, facets=("sparsity",), renderer="epochs_to", paper_epochs=100,
        scale_notes=(("cpu", "cpu scale: not run (ImageNet)."),
                     ("paper", f"paper scale: runs when ImageNet is in ${IMAGENET_ENV} (default data/imagenet)."))),
    _hours(16, _fig16, "cifar100", setting="WRN-28-4 and ResNet-18, CIFAR-100", sparsities="99%"),
    _hours(17, "vgg16", setting="VGG-16, CIFAR-10"),
    _hours(18, "vgg16", objective="at", setting="VGG-16, CIFAR-10"),
    _hours(19, "wrn-28-4", setting="WRN-28-4, CIFAR-10"),
    _hours(20, "wrn-28-4", objective="at", setting="WRN-28-4, CIFAR-10"),
    _hours(21, "vgg16", "svhn", setting="VGG-16, SVHN"),
    _hours(22, "vgg16", "svhn", "trades", setting="VGG-16, SVHN"),
    ArtifactSpec(
        "fig23", "Scaling parameter γ = 0.5 and 0.01 against 0.1", "App. B.3, Figure 23",
        "VGG-16, CIFAR-10, BSR-Net, 99% sparsity, AT",
        (Claim("With γ = 0.5, A-BSR-Net diverges (collapses after about 40 epochs).", collapses("γ = 0.5")),
         Claim("With γ = 0.01, A-BSR-Net converges more slowly than with γ = 0.1.", faster("γ = 0.1", "γ = 0.01"))),
        UNSTATED_SEEDS, ("bsr", "gamma", "curves"), arms=_fig23, facets=("objective", "sparsity"), renderer="curves",
        budgets=BSR_BUDGETS, scale_notes=(("cpu", "cpu scale: standard training in place of AT."),)),
    ArtifactSpec(
        "fig24", "SVRG in BSR-Net-based models", "App. B.4.1, Figure 24",
        "VGG-16, CIFAR-10, BSR-Net, 99% sparsity, AT",
        (Claim("BSR-Net with SVRG is below A-BSR-Net and BSR-Net.",
               all_of(faster("A-BSR-Net", "SVRG"), faster("BSR-Net", "SVRG"))),),
        UNSTATED_SEEDS, ("bsr", "svrg", "curves"), arms=_fig24, facets=BSR_FACETS, renderer="curves",
        budgets=BSR_BUDGETS, scale_notes=(("cpu", CPU_SCOPE),)),
    ArtifactSpec(
        "fig25", "SVRG in RigL-based models", "App. B.4.2, Figure 25",
        "ResNet-50, CIFAR-100, RigL, 90% sparsity, standard training",
        (Claim("RigL with SVRG is always below A-RigL and RigL.",
               all_of(faster("A-RigL", "SVRG", quantifier="all"), faster("RigL", "SVRG", quantifier="all"))),),
        UNSTATED_SEEDS, ("rigl", "svrg", "curves"), arms=_fig25, facets=("sparsity",), renderer="curves",
        paper_epochs=250, scale_notes=(("cpu", CPU_STAND_IN.format(what="ResNet-50 on CIFAR-100")),)),
    ArtifactSpec(
        "fig26", "The loss-based estimate ĉ* against the true gradient correlation", "App. B.7, Figure 26",
        "ResNet-50, CIFAR-10, RigL, 90% and 99% sparsity, standard training, per epoch",
        (Claim("ĉ* and the correlation of consecutive full gradients rise and fall together.",
               co_move("c_hat_star", "grad_corr", label="A-RigL")),
         Claim("ĉ* is usually larger than the correlation.",
               co_move("c_hat_star", "grad_corr", label="A-RigL", larger=True))),
        "How the 'true' correlation is computed is not stated: full gradients at θ and the previous θ̃ on the "
        "same refresh batches.", ("rigl", "diagnostics"), arms=_fig26_arms, facets=("sparsity",),
        renderer="c_hat_vs_correlation", paper_epochs=250,
        scale_notes=(("cpu", CPU_STAND_IN.format(what="ResNet-50")),)),
    ArtifactSpec(
        "fig27", "Growth with the variance-corrected gradient (RigL-ITOP-G)", "App. B.8, Figure 27",
        "VGG-C and ResNet-34, CIFAR-10, RigL-ITOP, 99% sparsity, standard training",
        (Claim("Growing with the corrected gradient is faster early in training (before the first lr decay).",
               faster("RigL-ITOP-G", "RigL-ITOP", epochs=(0.0, 0.5))),
         Claim("After the first lr decay, growing with the corrected gradient ends slightly below plain RigL-ITOP.",
               faster("RigL-ITOP", "RigL-ITOP-G", epochs=(0.5, 1.0)))),
        "Both arms train with AGENT; RigL-ITOP-G grows where the corrected gradient ĝ = g − c·(g_old − g̃) "
        "is largest, computed at the free positions too (growth 'corrected-gradient'; AGENT's step corrects "
        "the active positions only, where growth does not look). " + UNSTATED_SEEDS, ("itop", "growth", "curves"),
        arms=_fig27, facets=ITOP_FACETS, renderer="curves", paper_epochs=250,
        scale_notes=(("cpu", "cpu scale: VGG-C only."),)),
)

ARTIFACTS: dict[str, ArtifactSpec] = {spec.id: spec for spec in ARTIFACT_LIST}
