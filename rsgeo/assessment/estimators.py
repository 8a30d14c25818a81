"""Accuracy and area estimators for a stratified sample (Olofsson et al. 2014).

Pure functions of the error matrix of *sample counts* and the *map area* of
each stratum: no file, no geometry. The strata are the map classes (after the
class map merged them); the sample may have been drawn by stratified random
sampling with any allocation, or by simple random sampling (then the same
formulas are the post-stratified estimators).

References, with the equation numbers used below:
Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E.,
Wulder, M. A. (2014). Good practices for estimating area and assessing accuracy
of land change. Remote Sensing of Environment 148, 42-57.

* eq. 4: estimated area proportions ``p_ij = W_i n_ij / n_i.``
* eq. 1-3: overall, user's and producer's accuracy from ``p_ij``
* eq. 5-7: their variances
* eq. 9-11: area proportion of each reference class, its standard error, area and CI

Kappa is reported because users ask for it; the paper recommends against it
(section 4.2.2). It is Cohen's kappa of the sample counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Two-sided 95 % normal quantile (the paper's 1.96).
Z95 = 1.96


@dataclass(frozen=True)
class Estimates:
    """Everything estimated from one error matrix (``nan`` where a quantity is undefined)."""

    classes: tuple[str, ...]
    #: ``counts[i, j]``: sample units mapped as class i with reference class j.
    counts: np.ndarray
    #: Map area of each class (the strata), in the caller's unit (pixels, m², ha).
    map_area: np.ndarray
    #: ``W_i``: the map area fraction of each class.
    weights: np.ndarray
    #: ``p_ij`` (eq. 4): the error matrix in estimated area proportions.
    proportions: np.ndarray
    overall_accuracy: float
    overall_accuracy_se: float
    users_accuracy: np.ndarray
    users_accuracy_se: np.ndarray
    producers_accuracy: np.ndarray
    producers_accuracy_se: np.ndarray
    f1: np.ndarray
    kappa: float
    #: Estimated area proportion of each reference class (eq. 9) and its standard error (eq. 10).
    area_proportion: np.ndarray
    area_proportion_se: np.ndarray
    #: Error-adjusted area (``area_proportion`` times the total map area) and its standard error.
    area: np.ndarray
    area_se: np.ndarray

    @property
    def total_area(self) -> float:
        return float(self.map_area.sum())

    def ci95(self, se: np.ndarray | float) -> np.ndarray | float:
        """Half width of the 95 % confidence interval of a standard error."""
        return Z95 * se


def estimate(classes: Sequence[str], counts: np.ndarray, map_area: np.ndarray) -> Estimates:
    """Stratified estimates from sample ``counts`` (map class x reference class) and the strata's ``map_area``.

    ``counts`` is square (the same classes along both axes; a class only the
    reference knows has a zero row and zero map area). A stratum holding map
    area but no sample unit leaves its share of the map unestimated: its
    user's accuracy is ``nan`` and it adds nothing to the proportions, so such
    strata should be avoided by the allocation (``rsgeo sample`` does).
    """
    n = np.asarray(counts, np.float64)
    area = np.asarray(map_area, np.float64)
    k = len(classes)
    if n.shape != (k, k) or area.shape != (k,):
        raise ValueError(f"counts must be {k} x {k} and map_area of length {k}, got {n.shape} and {area.shape}")
    total = area.sum()
    w = area / total if total > 0 else np.zeros(k)
    n_i = n.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_i[:, None] > 0, n / n_i[:, None], 0.0)  # n_ij / n_i.
    p = w[:, None] * share  # eq. 4
    p_col = p.sum(axis=0)
    diag = np.diag(p)
    overall = float(diag.sum())  # eq. 1
    with np.errstate(divide="ignore", invalid="ignore"):
        users = np.where(n_i > 0, np.diag(n) / n_i, np.nan)  # eq. 2 (= p_ii / p_i.)
        producers = np.where(p_col > 0, diag / p_col, np.nan)  # eq. 3
        # Variances divide by n_i. - 1: a stratum with one unit has none (nan).
        dof = np.where(n_i > 1, n_i - 1, np.nan)
        var_users = users * (1 - users) / dof  # eq. 6
        var_overall = float(np.nansum(w**2 * users * (1 - users) / dof))  # eq. 5
        # eq. 7, with N_i. the map area of stratum i and N.j the estimated area of reference class j.
        big_n_row = area
        big_n_col = (big_n_row[:, None] * share).sum(axis=0)
        var_prod = np.full(k, np.nan)
        for j in range(k):
            if big_n_col[j] <= 0:
                continue
            if n_i[j] == 0 and big_n_row[j] == 0:  # a class only the reference knows: no map stratum of its own
                own = 0.0
            elif np.isfinite(users[j]) and np.isfinite(dof[j]):
                own = big_n_row[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / dof[j]
            else:
                continue
            others = 0.0
            for i in range(k):
                if i == j or n_i[i] <= 1:
                    continue
                others += big_n_row[i] ** 2 * share[i, j] * (1 - share[i, j]) / (n_i[i] - 1)
            var_prod[j] = (own + producers[j] ** 2 * others) / big_n_col[j] ** 2
        # eq. 10: standard error of the estimated area proportion of each reference class.
        var_area = np.nansum(w[:, None] ** 2 * share * (1 - share) / dof[:, None], axis=0)
        f1 = np.where(users + producers > 0, 2 * users * producers / (users + producers), np.nan)
    return Estimates(
        classes=tuple(classes), counts=np.asarray(counts), map_area=area, weights=w, proportions=p,
        overall_accuracy=overall, overall_accuracy_se=math.sqrt(var_overall),
        users_accuracy=users, users_accuracy_se=np.sqrt(var_users),
        producers_accuracy=producers, producers_accuracy_se=np.sqrt(var_prod),
        f1=f1, kappa=cohen_kappa(n),
        area_proportion=p_col, area_proportion_se=np.sqrt(var_area),
        area=p_col * total, area_se=np.sqrt(var_area) * total,
    )


def cohen_kappa(counts: np.ndarray) -> float:
    """Cohen's kappa of an error matrix of counts (``nan`` for an empty matrix or chance agreement 1)."""
    n = np.asarray(counts, np.float64)
    total = n.sum()
    if total <= 0:
        return math.nan
    observed = np.trace(n) / total
    chance = float((n.sum(axis=0) * n.sum(axis=1)).sum() / total**2)
    return math.nan if chance >= 1 else float((observed - chance) / (1 - chance))
