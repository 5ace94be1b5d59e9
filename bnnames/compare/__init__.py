"""`bnnames compare`: checkpoints side by side. The figures of each run (`runs`), the table and
its JSON (`table`), the overlaid PNGs (`plots`, matplotlib, optional) and the page that shows
them with the table (`page`)."""
