"""Stages that are not learning algorithms, and that algorithms may call: record
demonstrations (:mod:`.record`), evaluate a policy in closed loop (:mod:`.evaluate`),
compare several (:mod:`.compare`), look inside a CNN (:mod:`.visualize`), export a policy
(:mod:`.policy_export`) and the motion-imitation lab (:mod:`.motion`)."""
