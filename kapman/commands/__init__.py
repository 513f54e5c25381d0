"""The command line of each step: its parser, the parameters it builds and the summary it prints.

``kapman <step>`` and ``python -m scripts.<entry>`` (a shim) both run ``main`` of the module
named after the step; ``kapman.registry`` names the module and the command.
"""
