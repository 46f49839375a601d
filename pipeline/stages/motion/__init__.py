"""The course's motion-imitation lab, closed in physics: ``pipeline motion fit`` learns a
skill's clip as phase -> joint angles (:mod:`pipeline.stages.motion.fit`), ``pipeline motion play``
replays the learned motion kinematically beside the clip and in physics as open-loop PD
targets, next to closed-loop policies (:mod:`pipeline.stages.motion.play`)."""
