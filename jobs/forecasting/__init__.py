"""Sales forecast: daily orders and revenue per product category, 28 days ahead, with intervals.

- :mod:`jobs.forecasting.model`: ``forecast_sales`` (ETS with a weekly season, fallbacks for short
  series), ``seasonal_naive``, ``fill_daily`` (pure pandas / statsmodels, no I/O);
- :mod:`jobs.forecasting.sales`: silver orders and products -> daily history per category, the
  forecast run of a date, its warehouse write (``marketing.sales_forecast``);
- :mod:`jobs.forecasting.backtest`: rolling-origin backtest against the seasonal-naive baseline;
- :mod:`jobs.forecasting.cli`: ``msp forecast sales --ds D``.

See docs/FORECAST.md.
"""
