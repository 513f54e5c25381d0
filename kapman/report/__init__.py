"""Reports: a symbol's day as a self-contained HTML page, a watchlist index, warehouse coverage.

``data`` reads what A2 and A3 stored, ``keyvalues`` turns a day into the labelled figures the
page's table and ``kapman show`` print, ``charts`` builds the plotly.js figures, ``page`` assembles
one offline HTML file, ``watchlist`` and ``warehouse`` write the other two pages.
"""
