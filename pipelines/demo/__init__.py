"""The built-in demo: Br35H brain-MRI slices with simulated subjects and simulated consent."""
