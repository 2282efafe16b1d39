"""Reports: evaluated runs as the report reads them (``results``), the claims engine
(``claims``), the tables and claims pages (``report``), the paper's figure grids (``figures``)
and the AU proxies' validity page (``validity``)."""
