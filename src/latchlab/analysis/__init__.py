"""Reading results: statistics, figures, diagnostics of trained members, loss landscapes."""
