"""Hands: reading hand files, the HandModel pytree, annotations, kinematics, collision, pictures."""
