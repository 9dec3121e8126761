"""Reader for trirl ``.reward`` files (import name ``trirl.rewards``).

Imports numpy and safetensors only: no JAX, no MuJoCo.
"""
