"""Stage 6, publishing: leaderboard tables (CSV/Markdown), statistics (CIs, paired tests, Holm),
plots and the HTML report."""
