"""The paper's 8 tables and 27 figures as specs: titles, settings, claims, unstated choices.

Titles and settings follow the captions and the text around them (paper
``000_473d291ef5098bb2.txt``); claims are phrased so that our runs can hold or refute them.
"""
from __future__ import annotations

from .spec import ArtifactSpec

BSR_EPOCHS = "accuracy at epoch budgets 20, 40, 70, 90, 140, 200 (mean (std) over seeds, as the paper prints)"
UNSTATED_SEEDS = "The paper does not state its seeds or their number: 3 seeds here."


def _bsr_curves(n: int, setting: str, objective: str) -> ArtifactSpec:
    return ArtifactSpec(
        f"fig{n}", f"BSR-Net vs A-BSR-Net: accuracy given the number of epochs ({setting}, {objective})",
        "App. B.1", f"BSR-Net pipeline, 90% and 99% sparsity, {setting}, {objective}",
        (f"A-BSR-Net reaches each accuracy level in fewer epochs than BSR-Net ({setting}, {objective}).",),
        UNSTATED_SEEDS, ("bsr", "curves"))


def _hours(n: int, setting: str, objective: str, sparsities: str = "90% and 99%") -> ArtifactSpec:
    return ArtifactSpec(
        f"fig{n}", f"Hours to reach a given accuracy ({setting}, {objective})", "App. B.2",
        f"BSR-Net or RigL pipeline, {sparsities} sparsity, {setting}, {objective}",
        (f"AGENT needs less wall-clock time than its baseline to reach each accuracy ({setting}, {objective}), "
         "its extra full-gradient passes included.",),
        "Hours depend on the machine: compared here on one machine, and also in fwd_bwd passes.",
        ("wall-clock",))


ARTIFACT_LIST: tuple[ArtifactSpec, ...] = (
    ArtifactSpec(
        "table1", "Testing accuracy of BSR-Net-based models (clean/robust)", "§6.2, Table 1",
        "VGG-16, CIFAR-10, BSR-Net vs A-BSR-Net, 90% and 99% sparsity, AT, TRADES and standard training; "
        + BSR_EPOCHS,
        ("For the same number of epochs, A-BSR-Net's clean accuracy is higher than BSR-Net's in almost all cells.",
         "A-BSR-Net's robust accuracy (PGD-50, 10 restarts) is higher than BSR-Net's at later budgets under AT "
         "and TRADES."),
        "The bracketed number after each clean accuracy is read as the std over seeds. " + UNSTATED_SEEDS,
        ("bsr", "adversarial")),
    ArtifactSpec(
        "table2", "Final accuracy of RigL-based models at 0% (dense), 90% and 99% sparsity", "§6.2, Table 2",
        "ResNet-50, CIFAR-10 and CIFAR-100, RigL vs A-RigL, standard training",
        ("A-RigL's final accuracy is at least RigL's at every sparsity and data set.",),
        "Most cells were lost in the text extraction; the four surviving values cannot be placed. " + UNSTATED_SEEDS,
        ("rigl",)),
    ArtifactSpec(
        "table3", "Final accuracy of BSR-Net-based models on SVHN with TRADES", "§6.2, Table 3",
        "VGG-16 and WRN-28-4, SVHN, BSR-Net vs A-BSR-Net, 90% and 99% sparsity, TRADES",
        ("A-BSR-Net's final accuracy is at least BSR-Net's.",),
        "The caption does not say whether the accuracy is clean or robust; read as clean (it equals Table 6's "
        "clean BSR-Net values). " + UNSTATED_SEEDS, ("bsr", "adversarial")),
    ArtifactSpec(
        "table4", "Testing accuracy of MVR vs AGENT+MVR", "§6.5, Table 4",
        "VGG-C, CIFAR-10, SET-ITOP, 99% sparsity, standard training, epochs 20, 40, 70, 90, 140, 200",
        ("AGENT+MVR's accuracy is higher than MVR's at most epoch budgets.",),
        "MVR's momentum parameter a is not stated: 0.1 here. " + UNSTATED_SEEDS, ("itop", "mvr")),
    ArtifactSpec(
        "table5", "Ablation: fixed c and no γ against AGENT (clean/robust)", "§6.6, Table 5",
        "VGG-16, CIFAR-10, BSR-Net, 90% and 99% sparsity, AT, TRADES and standard training; " + BSR_EPOCHS,
        ("Under AT and TRADES, 'No γ' learns poorly and has the lowest accuracy.",
         "AGENT's accuracy is higher than 'Fixed c' and 'No γ' in almost all cells, especially at 99% sparsity.",
         "Under standard training 'Fixed c' converges about as fast as AGENT, and AGENT's final accuracy is higher."),
        "'Fixed c' uses c = 0.1. " + UNSTATED_SEEDS, ("bsr", "ablation")),
    ArtifactSpec(
        "table6", "BSR-Net, HYDRA and A-BSR-Net on SVHN with TRADES (clean/robust)", "App. B, Table 6",
        "VGG-16 and WRN-28-4, SVHN, 90% and 99% sparsity, TRADES, 200 epochs, PGD-50 × 10 restarts",
        ("A-BSR-Net's clean and robust accuracies are at least those of BSR-Net and HYDRA.",),
        "The HYDRA and 'ours' columns were lost in the text extraction. " + UNSTATED_SEEDS,
        ("bsr", "hydra", "adversarial")),
    ArtifactSpec(
        "table7", "Gradient correlation under weight perturbation against sparsity", "App. B.6, Table 7",
        "ResNet-50, CIFAR-100, RigL and SET at 0, 50, 80, 90, 95% sparsity; correlation of full gradients at "
        "w and w + N(0, 0.015²), 3 replicates",
        ("The correlation decreases as sparsity increases, for RigL and for SET.",),
        "Whether masked weights are perturbed is not stated: all weights by default, active-only as an option.",
        ("diagnostics",)),
    ArtifactSpec(
        "table8", "AGENT against 'Reduce LR' (no γ, lr × 0.1)", "App. B.9, Table 8",
        "VGG-C and ResNet-34, SET-ITOP, standard training",
        ("'Reduce LR' converges comparably early on but reaches a lower final accuracy than AGENT.",),
        "The data set and sparsity are not stated: CIFAR-10 and 99% (as the other ITOP results). " + UNSTATED_SEEDS,
        ("itop", "ablation")),
    ArtifactSpec(
        "fig1", "Gradient variance and gradient correlation against sparsity", "§1, Figure 1",
        "RigL and SET at 0, 50, 80, 90, 95% sparsity (ResNet-50, CIFAR-100 as Table 7)",
        ("Gradient variance grows with sparsity.", "Gradient correlation drops with sparsity."),
        "The variance's batches and replicates are not stated: 20 minibatches, 3 replicates.", ("diagnostics",)),
    ArtifactSpec(
        "fig2", "Variance of the corrected gradient as a function of c", "§4, Figure 2",
        "Var[g − c·g_old + c·g̃] as a quadratic in c, with c*, a poor estimate ĉ and γĉ marked",
        ("With γ = 0.1, γĉ gives a variance below SGD's (c = 0) even when ĉ alone gives a larger one.",),
        "An illustration in the paper; measured here on a trained AGENT run's checkpoint.", ("diagnostics",)),
    ArtifactSpec(
        "fig3", "Testing accuracy of ITOP-based models at 99% sparsity", "§6.2, Figure 3",
        "CIFAR-10, 99% sparsity, RigL-ITOP and SET-ITOP with and without AGENT",
        ("A-RigL-ITOP and A-SET-ITOP converge faster than RigL-ITOP and SET-ITOP.",),
        "The model is not stated in the caption: VGG-C (as Figs. 5 and 27). " + UNSTATED_SEEDS, ("itop", "curves")),
    ArtifactSpec(
        "fig4", "Epochs needed to reach an accuracy at 99% sparsity", "§6.2, Figure 4",
        "VGG-16 and WRN-28-4, CIFAR-10, BSR-Net vs A-BSR-Net, standard and AT, 99% sparsity",
        ("A-BSR-Net needs fewer epochs than BSR-Net to reach each accuracy.",), UNSTATED_SEEDS, ("bsr", "epochs-to")),
    ArtifactSpec(
        "fig5", "SVRG against SGD and AGENT in ITOP-based models", "§6.3, Figure 5",
        "VGG-C and ResNet-34, CIFAR-10, RigL-ITOP and SET-ITOP, 99% sparsity",
        ("SVRG slows training down compared to SGD.", "AGENT accelerates training compared to SGD."),
        UNSTATED_SEEDS, ("itop", "svrg", "curves")),
    ArtifactSpec(
        "fig6", "Adam against AGENT in ITOP-based models", "§6.4, Figure 6",
        "CIFAR-10, RigL-ITOP and SET-ITOP, 99% sparsity",
        ("AGENT-based training converges faster than Adam-based training.",),
        "The model is not stated: VGG-C (as Fig. 5). Adam's lr is not stated: 1e-3. " + UNSTATED_SEEDS,
        ("itop", "adam", "curves")),
    _bsr_curves(7, "VGG-16, CIFAR-10", "standard training"),
    _bsr_curves(8, "VGG-16, CIFAR-10", "AT"),
    _bsr_curves(9, "WRN-28-4, CIFAR-10", "standard training"),
    _bsr_curves(10, "WRN-28-4, CIFAR-10", "AT"),
    _bsr_curves(11, "VGG-16, SVHN", "standard training"),
    _bsr_curves(12, "VGG-16, SVHN", "TRADES"),
    ArtifactSpec(
        "fig13", "Training curves of BSR-Net-based models at 99% sparsity (CIFAR-100, SVHN)", "App. B.1, Figure 13",
        "VGG-16 and WRN-28-4 on CIFAR-100 and SVHN, 99% sparsity, standard training",
        ("A-BSR-Net's accuracy rises faster than BSR-Net's.",), UNSTATED_SEEDS, ("bsr", "curves")),
    ArtifactSpec(
        "fig14", "Epochs to reach an accuracy for dense BSR-Net-based models", "App. B.1, Figure 14",
        "VGG-16, CIFAR-10, dense, standard and adversarial training",
        ("AGENT also accelerates dense training.",), UNSTATED_SEEDS, ("dense", "epochs-to")),
    ArtifactSpec(
        "fig15", "Epochs to reach an accuracy for ITOP-based models on ImageNet", "App. B.1, Figure 15",
        "ResNet-50, ImageNet-2012, ITOP, standard training",
        ("A-ITOP needs fewer epochs than ITOP to reach each accuracy on ImageNet.",),
        "Needs ImageNet: a spec only unless the data are present. " + UNSTATED_SEEDS, ("itop", "imagenet")),
    _hours(16, "WRN-28-4 and ResNet-18, CIFAR-100", "standard training", "99%"),
    _hours(17, "VGG-16, CIFAR-10", "standard training"),
    _hours(18, "VGG-16, CIFAR-10", "AT"),
    _hours(19, "WRN-28-4, CIFAR-10", "standard training"),
    _hours(20, "WRN-28-4, CIFAR-10", "AT"),
    _hours(21, "VGG-16, SVHN", "standard training"),
    _hours(22, "VGG-16, SVHN", "TRADES"),
    ArtifactSpec(
        "fig23", "Scaling parameter γ = 0.5 and 0.01 against 0.1", "App. B.3, Figure 23",
        "VGG-16, CIFAR-10, BSR-Net, 99% sparsity, AT",
        ("With γ = 0.5, A-BSR-Net diverges (collapses after about 40 epochs).",
         "With γ = 0.01, A-BSR-Net converges more slowly than with γ = 0.1."),
        UNSTATED_SEEDS, ("bsr", "gamma", "curves")),
    ArtifactSpec(
        "fig24", "SVRG in BSR-Net-based models", "App. B.4.1, Figure 24",
        "VGG-16, CIFAR-10, BSR-Net, 99% sparsity, AT",
        ("BSR-Net with SVRG is below A-BSR-Net and BSR-Net.",), UNSTATED_SEEDS, ("bsr", "svrg", "curves")),
    ArtifactSpec(
        "fig25", "SVRG in RigL-based models", "App. B.4.2, Figure 25",
        "ResNet-50, CIFAR-100, RigL, 90% sparsity, standard training",
        ("RigL with SVRG is always below A-RigL and RigL.",), UNSTATED_SEEDS, ("rigl", "svrg", "curves")),
    ArtifactSpec(
        "fig26", "The loss-based estimate ĉ* against the true gradient correlation", "App. B.7, Figure 26",
        "ResNet-50, CIFAR-10, RigL, 90% and 99% sparsity, standard training, per epoch",
        ("ĉ* and the correlation of consecutive full gradients rise and fall together.",
         "ĉ* is usually larger than the correlation."),
        "How the 'true' correlation is computed is not stated: full gradients at θ and the previous θ̃ on the "
        "same refresh batches.", ("rigl", "diagnostics")),
    ArtifactSpec(
        "fig27", "Growth with the variance-corrected gradient (RigL-ITOP-G)", "App. B.8, Figure 27",
        "VGG-C and ResNet-34, CIFAR-10, RigL-ITOP, 99% sparsity, standard training",
        ("Growing with the corrected gradient is faster early in training.",
         "After the first lr decay, growing with the corrected gradient ends slightly below plain RigL-ITOP."),
        UNSTATED_SEEDS, ("itop", "growth", "curves")),
)

ARTIFACTS: dict[str, ArtifactSpec] = {spec.id: spec for spec in ARTIFACT_LIST}
