"""Simulation mode: pool-based active learning with an oracle on a fully labelled dataset.

A :class:`SimDataset` holds one row per 3 s segment (unit metadata as in
``results/detect/segments.parquet``), its embedding and its 0/1 species labels. It is built from

* the demo: BirdNET embeddings of the demo run + labels of every detected window from the
  generator's call events (:func:`demo_dataset`, :func:`window_labels`), or
* any dataset given as precomputed embeddings (``unit_id`` + ``embedding``), a labels table
  (``unit_id, species, present``) and unit metadata (:func:`custom_dataset`), or
* the synthetic stand-in of :mod:`activepam.simulation.synthetic` (for the divergence sweep).

One simulated run (:func:`run_simulation`) = one strategy x one replicate seed ``r``. A
replicate is the triple (data seed, split seed, active-learning seed), all derived from ``r``
(:func:`replicate_rows`), so the intervals over replicates vary the data and the test split, not
only the active learner:

1. data: with ``data_fraction < 1`` a seeded subsample of every site's recordings (without
   replacement; a cheap data-level resample: regenerating the demo and re-running BirdNET per
   replicate would cost minutes each; ``data_fraction: 1`` fixes the data and says so);
2. a test set (``test_fraction`` of the kept segments as whole recordings, stratified by site,
   seeded by ``split_seed + r`` when ``vary_split``;
   :func:`activepam.core.evaluate.split_by_recording`, the rounds' split), never sampled, and the
   pool (the rest);
3. a random seed set (``seed_size``), the same for every strategy of the same unit and replicate
   (strategies are compared paired);
4. rounds: train the probe on the labelled segments -> evaluate on the test set -> score the
   pool's uncertainty -> ask the sampling engine (:func:`activepam.sampling.engine.sample`) for the
   next batch (``batch_size``, fixed or geometrically growing) -> the oracle labels it.

Cost = what an expert pays: seconds of audio listened (``audio_seconds``). Labelling a recording
labels all its segments and costs its duration; a segment costs the clip the rounds export: its
3 s plus ``context_s`` on each side (``rounds.context_s`` unless set, clipped to the recording;
:func:`activepam.core.labels.clip_window`). With ``budget_unit: seconds`` (default) the seed set
and the batches are listening budgets - a fraction (< 1) of the pool's audio duration or seconds
(>= 1) - converted to a number of units by the pool's mean unit cost and kept on track round by
round, so whole recordings and single segments spend the same listening time per round;
``budget_unit: units`` gives counts of units (the old behaviour). Budgets are recorded in units,
segments, recordings and listening seconds, absolute and as fractions of the pool
(``audio_fraction`` = listening time / the pool's total recording duration, the same denominator
for both unit modes, so it can exceed 1 for segments with context).

The probe (:class:`Probe`) is the multi-label L2 logistic regression of scikit-learn's
``LogisticRegression(C)`` (same objective, verified against it in the tests) fitted for all
species at once with one L-BFGS run and warm-started from the previous round: per-species
scikit-learn fits were ~20 s per round on 1024-d embeddings, this takes well under a second.
Species without both classes among the labels get a constant (smoothed prevalence)
probability. Metrics (:func:`evaluate`): macro/micro average precision, macro AUROC, macro F1 at
``threshold``, ECE, and macro AP / F1 per stratum value with their spread (CV, Pielou J).

Imported datasets (``activepam datasets import``, issue 12): a predefined ``split`` column
replaces the random split (:func:`replicate_rows`), ``segment_cost: union`` costs overlapping
windows once (:func:`activepam.datasets.union_seconds`), ``species.csv`` beside the labels is
the species list, and any metadata column is a stratum. ``cold_start: true`` lets the strategy
pick the seed set from an untrained model (uniform scores); ``probe: baseal_mlp`` swaps the
probe for BaseAL's head (:class:`BaseALProbe`); ``timing: true`` records the sampling wall
time per round (``sampling_s``; the runs are then not byte-reproducible).

The tidy result (:data:`RESULT_COLUMNS`) has one row per (strategy, seed, round, stratum,
stratum_value, metric); overall metrics have ``stratum == stratum_value == "all"``.

Modules: :mod:`.dataset`, :mod:`.probe`, :mod:`.config`, :mod:`.replicates`, :mod:`.strategies`,
:mod:`.loop` (the AL loop), :mod:`.summaries`, :mod:`.divergence`, :mod:`.stratified`,
:mod:`.claims`, :mod:`.table`, :mod:`.steps` (one function per simulate.smk rule),
:mod:`.workflow` (parse-time helpers of simulate.smk), :mod:`.cli`, :mod:`.synthetic`;
metrics in :mod:`activepam.core.metrics`.

Analyses:


Learning-curve statistics (used to compare sampling strategies):

* :func:`bootstrap_interval` - mean and percentile-bootstrap interval over replicates (on the
  metric's range: no macro AP below 0 or above 1); :func:`t_interval` is kept for reference;
* :func:`aulc` - normalised area under a learning curve over a budget window (trapezoid divided
  by the window, so it is the curve's mean level in metric units); :func:`baseal_aulc` -
  BaseAL's (BioDCASE 2026 Task 4) variant from (0, 0) over the labels, and
  :func:`protocol_summary` its per-run table with annotation cost and sampling time;
* :func:`budget_to_target` - first (linearly interpolated) budget at which a curve reaches a
  target score, e.g. 95 % of the replicate's full-supervision score;
* :func:`spread` - coefficient of variation and Pielou evenness of per-stratum performance.

The cost axis is what an expert pays: seconds of audio listened (``audio_seconds``; a segment
costs its exported clip with context, a recording its duration), so whole recordings and single
segments are on the same axis; unit counts are kept as extra columns. A replicate seed varies
the data (subsample), the test split and the active learner (:func:`activepam.simulation.replicates.
replicate_rows`); the full-supervision reference is computed per replicate and gets its own
interval; "x % of full supervision" is the ratio to the replicate's reference (uncapped).

Stratified generalisation (after McEwen, Bernard & Stowell 2025):

* :func:`stratum_label_distributions` / :func:`divergence_to_rest` - Jensen-Shannon divergence
  (base 2, in [0, 1]) between strata's species-label (or predicted) distributions;
* :func:`mutual_information` - I(stratum; species) in bits over the species occurrences and its
  fraction of the species-label entropy, with a permutation baseline for the plug-in bias;
* :func:`leave_one_stratum_out` - train a probe without a stratum and test on it, compared with
  a probe that also saw part of the stratum (the in-distribution reference) on the same test
  recordings; the drop is then related to the stratum's divergence from the rest per setting
  (:func:`loso_correlation`, no p-values over strata) and tested across independent settings
  (:func:`across_settings_test`).

Gathering simulated runs (:func:`summarise`, :func:`gather_to_files`): per run the AULC over the
listening window every run covers (and up to the mid budget), the metric and its ratio to the
replicate's full supervision at the end, and the listening seconds (and units) needed to reach
``target_fraction`` x full supervision; per strategy their means and bootstrap intervals;
``claims.json`` with the configured claim (Top-K entropy files vs random files: target reached
within ``max_budget`` of the pool's audio, paired AULC difference) and the paired comparisons
(:data:`DEFAULT_COMPARISONS`); :func:`strategy_table` prints the README strategy table.
"""
