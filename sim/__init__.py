"""Cycle-accurate verification of the generated RTL with cocotb (Verilator, Icarus Verilog).

``pytest sim/`` runs the benches; ``python -m sim.layer`` runs one layer of a weight file
through the RTL; :mod:`sim.tools` finds the simulators.
"""
