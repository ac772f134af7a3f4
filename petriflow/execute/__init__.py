"""petriflow.execute"""
