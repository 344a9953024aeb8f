"""Experiments built on the strategies: the method comparison on a task (``compare``), the like-for-like retraining of
a planner search's winners (``retrain_winners``), a planner search's report against its references
(``reference_report``), the DDP gradient check of the supernets (``ddp_gradcheck``) and the comparison plot."""
